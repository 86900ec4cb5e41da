"""Items from memory: a miss reads its block of neighbours into free room only; bodies as a single read gives."""

from __future__ import annotations

import re
from typing import Any

from daemon.api.app import CUSTOMERS_API, ApiOptions
from daemon.api.handlers import ITEM_BLOCK, CustomersApi
from daemon.provider.simulator import Simulator
from tests.api.conftest import SEEDED, Api, MakeApi
from tests.api.support import Feed, bump_version


def _api_of(api: Api) -> CustomersApi:
    return api.client.app[CUSTOMERS_API]  # type: ignore[index]


def _acquisitions(api: Api) -> float:
    for metric in api.metrics.db_acquire_wait.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    raise AssertionError("no acquire histogram")


def _item_keys(api: Api, role: str) -> set[int]:
    return {key[2] for key in _api_of(api).cache._entries if key[0] == "item" and key[1] == role}


async def test_an_item_miss_caches_its_whole_block_and_neighbours_need_no_db(make_api: MakeApi, customers: Any) -> None:
    """One viewer item read fills every live id of its block; the neighbours are then served without the DB."""
    assert SEEDED < ITEM_BLOCK  # ids 1..SEEDED are all in block 0
    api = await make_api(options=ApiOptions(version_ttl_s=60))
    assert (await api.get("/clientes/7", "viewer")).status == 200
    assert _item_keys(api, "viewer") == set(range(1, SEEDED + 1))
    assert _item_keys(api, "analyst") == set(), "a role's block holds only that role's bodies"
    before = _acquisitions(api)
    for record_id in (1, 100, SEEDED):
        assert (await api.get(f"/clientes/{record_id}", "viewer")).status == 200
    assert _acquisitions(api) == before


async def test_block_bodies_equal_single_reads_and_pages(make_api: MakeApi, customers: Any) -> None:
    """Every item body and ETag served from a block equals what a single-item read (no room for blocks) gives."""
    blocks = await make_api(options=ApiOptions(version_ttl_s=60))
    single = await make_api(options=ApiOptions(version_ttl_s=60, cache_max_entries=ITEM_BLOCK - 1))
    for role in ("viewer", "analyst"):
        page = await blocks.json("/clientes?limit=20", role)
        for record_id in (3, 11, 20):
            one, other = (
                await blocks.get(f"/clientes/{record_id}", role),
                await single.get(f"/clientes/{record_id}", role),
            )
            assert await one.read() == await other.read()
            assert one.headers["ETag"] == other.headers["ETag"]
            assert await one.json() == page[record_id - 1]
    assert _item_keys(single, "viewer") == {3, 11, 20}, "without room for a block, only the item asked is cached"


async def test_a_full_cache_reads_only_the_item_and_evicts_nothing_for_neighbours(
    make_api: MakeApi, customers: Any
) -> None:
    """Neighbours go only into free room: when a block would not fit, nothing cached is pushed out for it."""
    api = await make_api(options=ApiOptions(version_ttl_s=60, cache_max_entries=ITEM_BLOCK + 1))
    await api.get("/clientes?limit=10", "viewer")
    await api.get("/clientes?limit=10", "analyst")
    await api.get("/clientes/5", "viewer")
    keys = set(_api_of(api).cache._entries)
    assert ("page", "viewer", 0, 10) in keys and ("page", "analyst", 0, 10) in keys
    assert _item_keys(api, "viewer") == {5}


async def test_absent_and_soft_deleted_ids_are_404_and_never_cached(
    make_api: MakeApi, provider: Simulator, feed: Feed
) -> None:
    """A block read does not invent items: unknown and soft-deleted ids answer 404 and leave no entry."""
    provider.remove([4])
    await feed.sync(provider)
    api = await make_api(options=ApiOptions(version_ttl_s=60))
    assert (await api.get("/clientes/4", "viewer")).status == 404
    assert (await api.get(f"/clientes/{SEEDED + 1}", "viewer")).status == 404
    assert (await api.get(f"/clientes/{ITEM_BLOCK * 40 + 1}", "viewer")).status == 404
    keys = _item_keys(api, "viewer")
    assert 4 not in keys and SEEDED + 1 not in keys and keys == set(range(1, SEEDED + 1)) - {4}
    assert (await api.get("/clientes/4?include_deleted=true", "admin")).status == 200


async def test_a_new_version_reloads_the_block(make_api: MakeApi, customers: Any) -> None:
    """After a data version bump the next item read fetches fresh bodies for the block."""
    api = await make_api(options=ApiOptions(version_ttl_s=0))
    first = await api.get("/clientes/9", "viewer")
    await api.db.execute("UPDATE customers SET user_name = 'renamed' WHERE id IN (9, 10)")
    await bump_version(api.db)
    assert (await api.json("/clientes/9", "viewer"))["user_name"] == "renamed"
    assert (await api.json("/clientes/10", "viewer"))["user_name"] == "renamed"
    assert (await api.get("/clientes/9", "viewer", **{"If-None-Match": first.headers["ETag"]})).status == 200


async def test_deleted_at_is_utc_iso_with_microseconds(api: Api, provider: Simulator, feed: Feed) -> None:
    """Admin listing with include_deleted: deleted_at is the stored DATETIME(6) as ISO 8601 UTC with a Z."""
    provider.remove([6])
    await feed.sync(provider)
    (stored,) = await api.db.fetch_all("SELECT deleted_at FROM customers WHERE id = 6")
    record = (await api.json("/clientes?limit=6&include_deleted=true", "admin"))[5]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", record["deleted_at"])
    assert record["deleted_at"] == stored[0].isoformat(timespec="microseconds") + "Z"
    assert list(record)[-1] == "deleted_at"
