"""Pages from memory: ETag/304, invalidation by data version, bounds, and never an admin value."""

from __future__ import annotations

import asyncio
from typing import Any

from daemon.api.app import CUSTOMERS_API, ApiOptions
from daemon.api.cache import CachedPage, PageCache, SingleFlight
from daemon.api.handlers import CustomersApi
from daemon.provider.simulator import Simulator
from tests.api.conftest import Api, Logs, MakeApi
from tests.api.support import Feed, bump_version


def _api_of(api: Api) -> CustomersApi:
    return api.client.app[CUSTOMERS_API]  # type: ignore[index]


def _acquisitions(api: Api) -> float:
    for metric in api.metrics.db_acquire_wait.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    raise AssertionError("no acquire histogram")


async def test_viewer_and_analyst_pages_carry_a_strong_etag_and_answer_304(api: Api, logs: Logs) -> None:
    """Same data, same ETag; If-None-Match with it gives 304 with no body, still audited."""
    for role in ("viewer", "analyst"):
        first = await api.get("/clientes?limit=10", role)
        etag = first.headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert first.headers["Cache-Control"] == "private, no-cache"
        assert first.headers["Vary"] == "Authorization"
        again = await api.get("/clientes?limit=10", role)
        assert again.headers["ETag"] == etag and await again.read() == await first.read()
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            not_modified = await api.get("/clientes?limit=10", role, **{"If-None-Match": header})
            assert not_modified.status == 304, header
            assert await not_modified.read() == b""
            assert not_modified.headers["ETag"] == etag and not_modified.headers["Link"] == first.headers["Link"]
            assert not_modified.headers["X-Request-ID"]
        stale = await api.get("/clientes?limit=10", role, **{"If-None-Match": '"something-else"'})
        assert stale.status == 200
    not_modified_events = [e for e in logs.audit() if e["status"] == 304]
    assert len(not_modified_events) == 8 and all(e["records"] == 10 for e in not_modified_events)


async def test_etag_differs_by_role_and_page(api: Api) -> None:
    """Different bodies never share an ETag."""
    tags = {
        (await api.get(path, role)).headers["ETag"]
        for role in ("viewer", "analyst")
        for path in ("/clientes?limit=10", "/clientes?limit=11", "/clientes/1", "/clientes/2")
    }
    assert len(tags) == 8


async def test_admin_answers_are_never_cached(api: Api) -> None:
    """Admin pages carry no ETag, say no-store, ignore If-None-Match, and leave nothing in the cache."""
    response = await api.get("/clientes?limit=10", "admin")
    assert "ETag" not in response.headers and response.headers["Cache-Control"] == "no-store"
    again = await api.get("/clientes?limit=10", "admin", **{"If-None-Match": "*"})
    assert again.status == 200
    assert (await api.get("/clientes/1", "admin")).headers["Cache-Control"] == "no-store"
    cache = _api_of(api).cache
    await api.get("/clientes?limit=10", "viewer")
    assert len(cache) == 1
    assert all(key[1] != "admin" for key in cache._entries)
    admin_body = await response.json()
    for page in cache._entries.values():
        assert admin_body[0]["cuenta_numero"].encode() not in page.body


async def test_cached_pages_are_served_without_touching_the_db(make_api: MakeApi, customers: object) -> None:
    """Within the version TTL repeated viewer pages and items need no DB connection at all."""
    api = await make_api(options=ApiOptions(version_ttl_s=60))
    assert (await api.get("/clientes", "viewer")).status == 200
    assert (await api.get("/clientes/7", "analyst")).status == 200
    before = _acquisitions(api)
    for _ in range(20):
        assert (await api.get("/clientes", "viewer")).status == 200
        assert (await api.get("/clientes/7", "analyst")).status == 200
    assert _acquisitions(api) == before
    assert (await api.get("/clientes", "admin")).status == 200
    assert _acquisitions(api) > before


async def test_a_new_data_version_invalidates_the_cache(api: Api) -> None:
    """A write without a version bump is not seen (served from memory); the bump makes it visible."""
    first = await api.get("/clientes/1", "viewer")
    name = (await first.json())["user_name"]
    await api.db.execute("UPDATE customers SET user_name = 'renamed' WHERE id = 1")
    unchanged = await api.get("/clientes/1", "viewer")
    assert (await unchanged.json())["user_name"] == name
    assert unchanged.headers["ETag"] == first.headers["ETag"]
    await bump_version(api.db)
    changed = await api.get("/clientes/1", "viewer", **{"If-None-Match": first.headers["ETag"]})
    assert changed.status == 200
    assert (await changed.json())["user_name"] == "renamed"
    assert changed.headers["ETag"] != first.headers["ETag"]


async def test_a_sync_that_changes_records_is_served_at_once(api: Api, provider: Simulator, feed: Feed) -> None:
    """The real syncer's write bumps the version: changed records show up; If-None-Match no longer matches."""
    before = await api.get("/clientes?limit=5", "analyst")
    provider.change([3])
    assert (await feed.sync(provider)).counts.updated == 1
    after = await api.get("/clientes?limit=5", "analyst", **{"If-None-Match": before.headers["ETag"]})
    assert after.status == 200 and after.headers["ETag"] != before.headers["ETag"]
    expected = {int(c["id"]): c for c in provider.truth()}
    assert [c["direccion"] for c in await after.json()] == [expected[i]["direccion"] for i in range(1, 6)]
    unchanged = await feed.sync(provider)
    assert unchanged.counts.updated == 0
    again = await api.get("/clientes?limit=5", "analyst", **{"If-None-Match": after.headers["ETag"]})
    assert again.status == 304, "a run that changed nothing leaves pages valid"


async def test_version_ttl_bounds_staleness(make_api: MakeApi, customers: object) -> None:
    """With a TTL, a bump is picked up once the TTL has passed (and not re-read before)."""
    api = await make_api(options=ApiOptions(version_ttl_s=0.3))
    await api.get("/clientes/1", "viewer")
    await api.db.execute("UPDATE customers SET user_name = 'later' WHERE id = 1")
    await bump_version(api.db)
    await asyncio.sleep(0.4)
    assert (await api.json("/clientes/1", "viewer"))["user_name"] == "later"


def _page(size: int) -> CachedPage:
    return CachedPage(body=b"x" * size, etag='"e"', link=None, ids=(1,))


def test_page_cache_is_bounded_in_entries_and_bytes_and_keeps_one_version() -> None:
    """LRU eviction by count and bytes; a newer version empties it; an older version is not stored."""
    cache = PageCache(max_entries=3, max_bytes=10_000)
    for i in range(5):
        cache.put(1, i, _page(10))
    assert len(cache) == 3 and cache.get(1, 0) is None and cache.get(1, 4) is not None
    cache.put(1, "big", _page(9_000))
    assert cache.size_bytes <= 10_000
    cache.put(1, "huge", _page(20_000))
    assert cache.get(1, "huge") is None
    cache.put(2, "new", _page(10))
    assert len(cache) == 1 and cache.get(1, 4) is None and cache.get(2, "new") is not None
    cache.put(1, "old", _page(10))
    assert cache.get(1, "old") is None and cache.get(2, "old") is None


async def test_single_flight_shares_one_load() -> None:
    """Concurrent misses of one key run the load once; an error reaches every waiter; a later call reloads."""
    flights: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    assert await asyncio.gather(*(flights.run("k", load) for _ in range(20))) == [42] * 20
    assert calls == 1

    async def broken() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    results: list[Any] = await asyncio.gather(*(flights.run("k", broken) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await flights.run("k", load) == 42 and calls == 2


async def test_single_flight_survives_a_cancelled_leader() -> None:
    """If the caller running the load is cancelled, a waiter loads by itself instead of failing."""
    flights: SingleFlight[str, int] = SingleFlight()

    async def slow() -> int:
        await asyncio.sleep(0.2)
        return 1

    leader = asyncio.create_task(flights.run("k", slow))
    await asyncio.sleep(0.01)
    waiter = asyncio.create_task(flights.run("k", slow))
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await waiter == 1
