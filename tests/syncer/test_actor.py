"""The syncer actor: schedule, one writer among replicas, outages that do not crash it, orderly stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from daemon.config.sync import SyncSettings
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.observability.metrics import Metrics
from daemon.syncer.actor import SyncerActor
from daemon.syncer.leader import Leadership
from daemon.syncer.runner import INTERRUPTED, PageSource
from tests.support.mysql import MysqlServer
from tests.support.tcp_proxy import TcpProxy
from tests.syncer.conftest import SyncDb
from tests.syncer.support import FakePage, keyring, kill_connection, pages_of, raw_record, until

RECORDS = [raw_record(i) for i in range(1, 31)]


def _actor(
    sdb: SyncDb,
    pages: PageSource,
    *,
    metrics: Metrics | None = None,
    interval_s: float = 0.2,
    db: Database | None = None,
    db_settings: object = None,
) -> SyncerActor:
    return SyncerActor(
        db=db or sdb.db,
        db_settings=db_settings or sdb.settings.db,  # type: ignore[arg-type]
        settings=SyncSettings(interval_s=interval_s, batch_size=25),
        keyring=keyring(),
        pages=pages,
        metrics=metrics or Metrics(CollectorRegistry()),
    )


async def _runs(sdb: SyncDb, status: str | None = None) -> int:
    if status is None:
        return int(await sdb.db.fetch_value("SELECT COUNT(*) FROM sync_runs"))
    return int(await sdb.db.fetch_value("SELECT COUNT(*) FROM sync_runs WHERE status = %s", (status,)))


async def _has(sdb: SyncDb, status: str, n: int) -> bool:
    return await _runs(sdb, status) >= n


async def _customers_at_least(sdb: SyncDb, n: int) -> bool:
    return int(await sdb.db.fetch_value("SELECT COUNT(*) FROM customers")) >= n


async def _skipped(*metrics: Metrics) -> bool:
    return any(m.sync_skipped._value.get() > 0 for m in metrics)


async def _metric_above(metrics: Metrics, value: float) -> bool:
    return bool(metrics.sync_runs.labels(status="failed")._value.get() >= value)


async def _gauge_is(metrics: Metrics, value: float) -> bool:
    return bool(metrics.sync_leader._value.get() == value)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


async def test_runs_at_start_then_on_schedule_and_releases_on_stop(sdb: SyncDb) -> None:
    """A run at start, more every interval; cancelling releases the lock so another process can lead at once."""
    metrics = Metrics(CollectorRegistry())
    task = asyncio.create_task(_actor(sdb, pages_of(RECORDS), metrics=metrics).run())
    try:
        await until(lambda: _has(sdb, "ok", 3))
    finally:
        await _stop(task)
    first = await sdb.db.fetch_one("SELECT inserted, unchanged FROM sync_runs ORDER BY id LIMIT 1")
    assert first == (30, 0)
    assert await sdb.db.fetch_value("SELECT MAX(unchanged) FROM sync_runs") == 30
    assert metrics.sync_leader._value.get() == 0
    other = Leadership(db_settings=sdb.settings.db, metrics=Metrics(CollectorRegistry()))
    try:
        assert await other.acquire() == 2
    finally:
        await other.release()


async def test_two_replicas_one_writes_the_other_skips(sdb: SyncDb) -> None:
    """Two actors on one database: one leads every run, the other skips, logs and counts; no double write."""
    m1, m2 = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    tasks = [
        asyncio.create_task(_actor(sdb, pages_of(RECORDS), metrics=m1).run()),
        asyncio.create_task(_actor(sdb, pages_of(RECORDS), metrics=m2).run()),
    ]
    try:
        await until(lambda: _has(sdb, "ok", 4))
        await until(lambda: _skipped(m1, m2))
    finally:
        for task in tasks:
            await _stop(task)
    leaders = [m for m in (m1, m2) if m.sync_runs.labels(status="ok")._value.get() > 0]
    assert len(leaders) == 1
    follower = m2 if leaders[0] is m1 else m1
    assert follower.sync_skipped._value.get() >= 1
    assert await sdb.db.fetch_value("SELECT COUNT(DISTINCT leader_epoch) FROM sync_runs") == 1
    assert await sdb.db.fetch_value("SELECT SUM(inserted) FROM sync_runs") == 30
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers") == 30


async def test_failed_run_is_recorded_and_the_schedule_goes_on(sdb: SyncDb) -> None:
    """The provider down for the first run: that run is failed, the actor does not crash, the next run is ok."""
    calls = 0

    def flaky() -> AsyncIterator[FakePage]:
        nonlocal calls
        calls += 1
        return pages_of(RECORDS, fail_after=0 if calls == 1 else None)()

    task = asyncio.create_task(_actor(sdb, flaky).run())
    try:
        await until(lambda: _has(sdb, "ok", 1))
        assert not task.done()
    finally:
        await _stop(task)
    statuses = [r[0] for r in await sdb.db.fetch_all("SELECT status FROM sync_runs ORDER BY id")]
    assert statuses[0] == "failed" and "ok" in statuses


async def test_db_outage_fails_runs_without_crashing(sdb: SyncDb, mysql: MysqlServer) -> None:
    """With the DB cut (proxy), ticks fail and are counted; the actor keeps its schedule and recovers."""
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    settings = dataclasses.replace(sdb.settings.db, port=proxy.port, query_timeout_s=1.0, connect_timeout_s=2.0)
    metrics = Metrics(CollectorRegistry())
    async with open_database(settings, metrics=metrics, create=False, pool_min=0, pool_max=3) as db:
        actor = _actor(sdb, pages_of(RECORDS), metrics=metrics, db=db, db_settings=settings)
        task = asyncio.create_task(actor.run())
        try:
            await until(lambda: _has(sdb, "ok", 1))
            await proxy.stop()
            failed = metrics.sync_runs.labels(status="failed")._value.get()
            await until(lambda: _metric_above(metrics, failed + 2))
            assert not task.done(), "an outage must not crash the actor"
            await proxy.start()
            ok = await _runs(sdb, "ok")
            await until(lambda: _has(sdb, "ok", ok + 1))
        finally:
            await _stop(task)
            await proxy.stop()


async def test_cancel_mid_run_rolls_back_records_and_releases(sdb: SyncDb) -> None:
    """Stopped mid-run: the run is recorded failed (interrupted), the lock is free, the stop is prompt."""
    blocked = asyncio.Event()

    async def hanging() -> AsyncIterator[FakePage]:
        yield FakePage(1, RECORDS[:25])  # one full batch, committed (its write overlaps this prefetch: wait for it)
        await until(lambda: _customers_at_least(sdb, 25))
        blocked.set()
        await asyncio.sleep(3600)
        yield FakePage(2, [])

    task = asyncio.create_task(_actor(sdb, hanging).run())
    await asyncio.wait_for(blocked.wait(), 15)
    started = time.monotonic()
    await _stop(task)
    assert time.monotonic() - started < 5
    row = await sdb.db.fetch_one("SELECT status, error, inserted, finished_at IS NOT NULL FROM sync_runs")
    assert row == ("failed", INTERRUPTED, 25, 1)
    other = Leadership(db_settings=sdb.settings.db, metrics=Metrics(CollectorRegistry()))
    try:
        assert await other.acquire() == 2
    finally:
        await other.release()


async def test_lock_session_is_pinged_between_runs(
    sdb: SyncDb, mysql: MysqlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between two runs the actor pings its lock session: a lost one is noticed before the next run."""
    monkeypatch.setattr("daemon.syncer.actor.KEEPALIVE_S", 0.1)
    metrics = Metrics(CollectorRegistry())
    actor = _actor(sdb, pages_of(RECORDS), metrics=metrics, interval_s=60)
    task = asyncio.create_task(actor.run())
    try:
        await until(lambda: _has(sdb, "ok", 1))
        assert metrics.sync_leader._value.get() == 1
        connection_id = await sdb.db.fetch_value("SELECT IS_USED_LOCK(CONCAT('customers-mngr:syncer:', DATABASE()))")
        await kill_connection(mysql, int(connection_id))
        await until(lambda: _gauge_is(metrics, 0), within_s=5)
        assert actor.runs_done == 1, "noticed while idle, not by a run"
    finally:
        await _stop(task)
