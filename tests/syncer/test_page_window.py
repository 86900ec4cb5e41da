"""Pages fetched ahead through the provider client: in order, a bounded window, the end and the failures as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from daemon.config import Settings
from daemon.config.sync import SyncSettings
from daemon.observability.metrics import Metrics
from daemon.provider.client import open_provider_session
from daemon.syncer.flow import PAGES_AHEAD
from daemon.syncer.leader import Leadership
from daemon.syncer.runner import SyncRunner
from daemon.syncer.runs import RunSummary
from daemon.syncer.wiring import provider_pages
from tests.support.simulator import provider_env
from tests.syncer.conftest import SyncDb
from tests.syncer.support import keyring, raw_record

PAGE = 10


@dataclass
class Provider:
    """A paginated provider on loopback that records what it was asked and how many requests overlapped."""

    records: int
    endless: bool = False  # every page full, whatever its number
    failing_page: int | None = None  # answers 503 for this page, always
    delay_s: float = 0.01
    requested: list[int] = field(default_factory=list)
    concurrent: int = 0
    most_concurrent: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        number, limit = int(request.query["page"]), int(request.query["limit"])
        self.requested.append(number)
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.concurrent -= 1
        if number == self.failing_page:
            return web.Response(status=503)
        start = (number - 1) * limit
        end = start + limit if self.endless else min(start + limit, self.records)
        return web.json_response([raw_record(i + 1) for i in range(start, end)])


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Provider], object]]:
    runners: list[web.AppRunner] = []

    async def start(provider: Provider) -> str:
        app = web.Application()
        app.router.add_get("/api/v1/usuarios", provider.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/api/v1/usuarios"

    yield start
    for runner in runners:
        await runner.cleanup()


async def _sync(sdb: SyncDb, make_settings: Callable[..., Settings], url: str, **env: str) -> RunSummary:
    settings = make_settings(sdb.name, **provider_env(url, PROVIDER_PAGE_SIZE=str(PAGE), **env))
    metrics = Metrics(CollectorRegistry())
    leadership = Leadership(db_settings=sdb.settings.db, metrics=metrics)
    async with open_provider_session(settings.provider) as session:
        runner = SyncRunner(
            db=sdb.db,
            keyring=keyring(),
            leadership=leadership,
            pages=provider_pages(session, settings.provider, metrics=metrics, url=None),
            settings=SyncSettings(interval_s=60, batch_size=25),
            metrics=metrics,
        )
        try:
            epoch = await leadership.acquire()
            assert epoch is not None
            return await runner.run(epoch)
        finally:
            await leadership.release()


async def _stored(sdb: SyncDb) -> list[int]:
    return [int(r[0]) for r in await sdb.db.fetch_all("SELECT id FROM customers ORDER BY id")]


@pytest.mark.parametrize("records", [95, 100, 3, 0])
async def test_every_page_is_read_once_in_order_with_a_bounded_window(
    records: int, sdb: SyncDb, make_settings: Callable[..., Settings], serve: Callable[[Provider], object]
) -> None:
    """A short or empty last page ends the snapshot; at most PAGES_AHEAD requests overlap; few are wasted."""
    provider = Provider(records=records)
    summary = await _sync(sdb, make_settings, str(await serve(provider)))  # type: ignore[misc]
    assert summary.status == "ok" and summary.complete
    assert summary.counts.inserted == records
    assert await _stored(sdb) == list(range(1, records + 1))
    last = records // PAGE + 1  # the first page shorter than the limit
    assert summary.counts.pages == last
    assert len(set(provider.requested)) == len(provider.requested)  # no page asked twice
    assert set(range(1, last + 1)) <= set(provider.requested)
    assert max(provider.requested) < last + PAGES_AHEAD  # requests past the end: fewer than the window
    assert 1 < provider.most_concurrent <= PAGES_AHEAD or last == 1


async def test_a_provider_that_never_ends_is_cut_at_max_pages(
    sdb: SyncDb, make_settings: Callable[..., Settings], serve: Callable[[Provider], object]
) -> None:
    """Full pages past PROVIDER_MAX_PAGES: the run fails as incomplete, deletes nothing, asks no page past the guard."""
    provider = Provider(records=0, endless=True)
    url = str(await serve(provider))  # type: ignore[misc]
    summary = await _sync(sdb, make_settings, url, PROVIDER_MAX_PAGES="4")
    assert summary.status == "failed" and not summary.complete
    assert "PROVIDER_MAX_PAGES=4" in (summary.error or "")
    assert max(provider.requested) == 4
    assert summary.counts.inserted == 40


async def test_a_failed_page_stops_the_snapshot_there_even_when_later_pages_arrived(
    sdb: SyncDb, make_settings: Callable[..., Settings], serve: Callable[[Provider], object]
) -> None:
    """Page 3 fails after its retries while pages 4.. were fetched alongside: only pages 1-2 are stored."""
    provider = Provider(records=100, failing_page=3)
    summary = await _sync(sdb, make_settings, str(await serve(provider)))  # type: ignore[misc]
    assert summary.status == "failed" and not summary.complete
    assert "page 3" in (summary.error or "")
    assert await _stored(sdb) == list(range(1, 21))
    assert any(number > 3 for number in provider.requested)  # fetched ahead, never stored
