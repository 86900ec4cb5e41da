"""The fast sync: unchanged records skipped by raw hash before parsing; overlapped writes stop at the first failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from daemon.errors import DatabaseError
from daemon.provider import records as records_module
from daemon.provider.records import raw_digest_input
from daemon.syncer import flow as flow_module
from daemon.syncer.leader import LEADER_ROW
from daemon.syncer.runs import RunCounts
from daemon.syncer.store import Batch, Store
from tests.syncer.conftest import SyncDb
from tests.syncer.support import FakePage, Harness, raw_record


@pytest.fixture
async def harness(sdb: SyncDb) -> AsyncIterator[Harness]:
    h = Harness(sdb, batch_size=50)
    yield h
    await h.close()


@pytest.fixture
def parsed_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """The ids of the records the sync parsed (the real parser, counted)."""
    seen: list[object] = []
    real = records_module.parse_record

    def counting(raw: object) -> Any:
        seen.append(raw.get("id") if isinstance(raw, dict) else raw)
        return real(raw)

    monkeypatch.setattr(flow_module, "parse_record", counting)
    yield seen


async def _rows(sdb: SyncDb) -> dict[int, tuple[object, ...]]:
    rows = await sdb.db.fetch_all("SELECT id, updated_at, content_hash, raw_hash, deleted_at FROM customers")
    return {int(r[0]): tuple(r[1:]) for r in rows}


async def _version(sdb: SyncDb) -> int:
    return int(await sdb.db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'"))


async def test_first_load_stores_the_keyed_raw_hash_without_the_cvv(harness: Harness, sdb: SyncDb) -> None:
    """Every row gets the keyed hash of its record as sent minus the CVV, which is not the content hash."""
    records = [raw_record(i) for i in range(1, 31)]
    await harness.sync(records)
    rows = await _rows(sdb)
    for record in records:
        record_id = int(str(record["id"]))
        digest = raw_digest_input(record)
        assert digest is not None and str(record["credit_card_ccv"]).encode() not in digest
        assert rows[record_id][2] == harness.keyring.raw_hash(digest)
        assert rows[record_id][2] != rows[record_id][1]


async def test_unchanged_records_are_skipped_without_parsing(
    harness: Harness, sdb: SyncDb, parsed_ids: list[object]
) -> None:
    """A re-sync of the same snapshot parses nothing, writes nothing, and counts every record unchanged."""
    records = [raw_record(i) for i in range(1, 121)]
    await harness.sync(records)
    before, version = await _rows(sdb), await _version(sdb)
    parsed_ids.clear()
    summary = await harness.sync(records)
    assert parsed_ids == []
    assert (summary.status, summary.counts.unchanged, summary.counts.fetched) == ("ok", 120, 120)
    assert (summary.counts.inserted, summary.counts.updated, summary.counts.deleted) == (0, 0, 0)
    assert await _rows(sdb) == before and await _version(sdb) == version
    assert harness.metrics.sync_records.labels(outcome="unchanged")._value.get() == 120


async def test_a_record_whose_raw_differs_is_parsed_and_written(
    harness: Harness, sdb: SyncDb, parsed_ids: list[object]
) -> None:
    """Only the changed record is parsed; it is written with its new raw hash, the others stay untouched."""
    records = [raw_record(i) for i in range(1, 101)]
    await harness.sync(records)
    before = await _rows(sdb)
    records[41] = raw_record(42, version=3)
    parsed_ids.clear()
    summary = await harness.sync(records)
    assert parsed_ids == ["42"]
    assert (summary.counts.updated, summary.counts.unchanged) == (1, 99)
    after = await _rows(sdb)
    assert [i for i in after if after[i] != before[i]] == [42]
    digest = raw_digest_input(records[41])
    assert digest is not None and after[42][2] == harness.keyring.raw_hash(digest)
    assert await sdb.db.fetch_value("SELECT direccion FROM customers WHERE id = 42") == "Calle 42 v3"


async def test_a_soft_deleted_row_is_restored_even_when_its_raw_hash_matches(
    harness: Harness, sdb: SyncDb, parsed_ids: list[object]
) -> None:
    """A record back in the snapshot exactly as it was is parsed and restored, never skipped as unchanged."""
    records = [raw_record(i) for i in range(1, 61)]
    await harness.sync(records)
    await harness.sync([r for r in records if r["id"] != "7"])
    stored_raw = (await _rows(sdb))[7][2]
    assert (await _rows(sdb))[7][3] is not None  # soft-deleted, raw hash still the same
    parsed_ids.clear()
    summary = await harness.sync(records)
    assert parsed_ids == ["7"]
    assert (summary.counts.restored, summary.counts.unchanged) == (1, 59)
    row = (await _rows(sdb))[7]
    assert row[3] is None and row[2] == stored_raw


async def test_a_cvv_only_change_changes_neither_the_raw_hash_nor_any_stored_value(
    harness: Harness, sdb: SyncDb, parsed_ids: list[object]
) -> None:
    """The CVV is not part of the raw hash: a new CVV is skipped like an unchanged record, nothing moves."""
    records = [raw_record(i) for i in range(1, 21)]
    await harness.sync(records)
    before, version = await _rows(sdb), await _version(sdb)
    changed = [{**r, "credit_card_ccv": "CVVCHANGED"} for r in records]
    parsed_ids.clear()
    summary = await harness.sync(changed)
    assert parsed_ids == [] and summary.counts.unchanged == 20
    assert await _rows(sdb) == before and await _version(sdb) == version


async def test_a_raw_change_with_the_same_content_only_refreshes_the_raw_hash(
    harness: Harness, sdb: SyncDb, parsed_ids: list[object]
) -> None:
    """Spacing or key order the parser normalizes away: counted unchanged, only raw_hash moves, then skipped."""
    records = [raw_record(i) for i in range(1, 11)]
    await harness.sync(records)
    before, version = await _rows(sdb), await _version(sdb)
    respaced = [{**r, "user_name": f"  {r['user_name']}  "} for r in records]
    summary = await harness.sync(respaced)
    assert (summary.counts.unchanged, summary.counts.updated) == (10, 0)
    after = await _rows(sdb)
    for record_id, row in after.items():
        assert row[:2] == before[record_id][:2] and row[3] is None  # updated_at, content_hash as they were
        assert row[2] != before[record_id][2]
    assert await _version(sdb) == version
    parsed_ids.clear()
    assert (await harness.sync(respaced)).counts.unchanged == 10
    assert parsed_ids == []


async def test_rows_without_a_raw_hash_are_parsed_once_then_skipped(
    harness: Harness, sdb: SyncDb, parsed_ids: list[object]
) -> None:
    """Rows stored before raw hashes existed (NULL) are compared by content once, then skipped."""
    records = [raw_record(i) for i in range(1, 41)]
    await harness.sync(records)
    await sdb.db.execute("UPDATE customers SET raw_hash = NULL")
    before = await _rows(sdb)
    parsed_ids.clear()
    summary = await harness.sync(records)
    assert len(parsed_ids) == 40 and summary.counts.unchanged == 40
    after = await _rows(sdb)
    assert all(row[2] is not None for row in after.values())
    assert all(after[i][:2] == before[i][:2] for i in before)
    parsed_ids.clear()
    assert (await harness.sync(records)).counts.unchanged == 40 and parsed_ids == []


async def test_duplicates_across_skips_and_changes_keep_the_last_one(harness: Harness, sdb: SyncDb) -> None:
    """An id changed, then sent again unchanged later in the same snapshot: the last one (stored) stays."""
    records = [raw_record(i) for i in range(1, 101)]
    await harness.sync(records)
    again = [*records[:5], raw_record(3, version=5), *records[5:], raw_record(3), raw_record(60, version=8)]
    summary = await harness.sync(again)
    assert (summary.counts.duplicates, summary.counts.fetched) == (3, 103)
    rows = dict(await sdb.db.fetch_all("SELECT id, direccion FROM customers WHERE id IN (3, 60)"))
    assert rows == {3: "Calle 3 v0", 60: "Calle 60 v8"}
    assert summary.counts.updated == 1  # id 60; id 3's change was superseded before it was written


async def test_the_unknown_fields_of_skipped_records_are_still_counted(harness: Harness) -> None:
    """Records skipped as unchanged still report their unknown fields."""
    records = [raw_record(i, nickname="x") for i in range(1, 11)]
    await harness.sync(records)
    summary = await harness.sync(records)
    assert (summary.counts.unchanged, summary.counts.unknown_fields) == (10, 10)


# --- the overlapped pipeline ------------------------------------------------------------------


class _Events:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.started = time.monotonic()

    def add(self, event: str) -> None:
        self.log.append(event)


def _paged(events: _Events, count: int, per_page: int = 10) -> Callable[[], AsyncIterator[FakePage]]:
    async def pages() -> AsyncIterator[FakePage]:
        for number, start in enumerate(range(1, count + 1, per_page), start=1):
            events.add(f"page {number}")
            yield FakePage(number, [raw_record(i) for i in range(start, min(start + per_page, count + 1))])

    return pages


async def test_a_failed_write_stops_the_run_and_nothing_after_it_is_written(
    sdb: SyncDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 2's write fails while later pages are already read: the run fails, no batch after it is written."""
    events = _Events()
    real = Store.write
    calls: list[int] = []

    async def write(self: Store, batch: Batch, *, run_id: int, epoch: int) -> RunCounts:
        calls.append(len(batch.records))
        number = len(calls)
        events.add(f"write {number} start")
        if number == 2:
            await asyncio.sleep(0.3)  # long enough for the pipeline to read on
            events.add("write 2 failed")
            raise DatabaseError("database execute failed: simulated")
        done = await real(self, batch, run_id=run_id, epoch=epoch)
        events.add(f"write {number} done")
        return done

    monkeypatch.setattr(Store, "write", write)
    harness = Harness(sdb, batch_size=20)
    try:
        harness.source = _paged(events, 100)
        epoch = await harness.leadership.acquire()
        assert epoch is not None
        summary = await harness.runner.run(epoch)
    finally:
        await harness.close()
    assert summary.status == "failed" and "simulated" in (summary.error or "")
    assert len(calls) == 2, events.log  # no write started after the failed one
    assert summary.counts.inserted == 20
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers") == 20
    failed_at = events.log.index("write 2 failed")
    assert any(e.startswith("page") for e in events.log[events.log.index("write 2 start") : failed_at]), events.log


async def test_fencing_holds_for_an_overlapped_write(sdb: SyncDb, monkeypatch: pytest.MonkeyPatch) -> None:
    """The epoch moves while batch 2's write is in flight: that write is fenced (rolled back), and the run stops."""
    events = _Events()
    real = Store.write
    calls: list[int] = []

    async def write(self: Store, batch: Batch, *, run_id: int, epoch: int) -> RunCounts:
        calls.append(len(batch.records))
        if len(calls) == 2:  # a new leader took over while this batch was being written
            await sdb.db.execute("UPDATE sync_leader SET epoch = epoch + 1 WHERE name = %s", (LEADER_ROW,))
        return await real(self, batch, run_id=run_id, epoch=epoch)

    monkeypatch.setattr(Store, "write", write)
    harness = Harness(sdb, batch_size=20)
    try:
        harness.source = _paged(events, 100)
        epoch = await harness.leadership.acquire()
        assert epoch is not None
        version = await _version(sdb)
        summary = await harness.runner.run(epoch)
    finally:
        await harness.close()
    assert summary.status == "failed" and "fenced" in (summary.error or "")
    assert len(calls) == 2
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers") == 20
    assert await _version(sdb) == version + 1


async def test_a_stop_during_an_overlapped_write_rolls_it_back_and_leaves_no_task(
    sdb: SyncDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while a write and a page fetch are in flight: both end, the batch rolls back, the lock is free."""
    real = Store.write
    in_flight = asyncio.Event()
    calls: list[int] = []

    async def write(self: Store, batch: Batch, *, run_id: int, epoch: int) -> RunCounts:
        calls.append(len(batch.records))
        if len(calls) == 2:
            async with sdb.db.transaction() as tx:  # hold the batch open inside a transaction, then hang
                await tx.execute("SELECT 1")
                in_flight.set()
                await asyncio.sleep(3600)
        return await real(self, batch, run_id=run_id, epoch=epoch)

    async def pages() -> AsyncIterator[FakePage]:
        for number in range(1, 4):
            yield FakePage(number, [raw_record(i) for i in range(number * 20 - 19, number * 20 + 1)])
        await asyncio.sleep(3600)  # the prefetch of the next page hangs too
        yield FakePage(4, [])

    monkeypatch.setattr(Store, "write", write)
    harness = Harness(sdb, batch_size=20)
    harness.source = pages  # type: ignore[assignment]
    before = set(asyncio.all_tasks())
    epoch = await harness.leadership.acquire()
    assert epoch is not None
    run = asyncio.create_task(harness.runner.run(epoch))
    await asyncio.wait_for(in_flight.wait(), 15)
    started = time.monotonic()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 10)
    assert time.monotonic() - started < 5
    left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert left == []
    assert harness.runner.last is not None and harness.runner.last.counts.inserted == 20
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers") == 20
    await harness.close()
    assert not harness.leadership.held


async def test_a_row_a_write_in_flight_may_change_is_never_skipped(
    sdb: SyncDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids of the batch being written are parsed even when a lookup that ran before its commit says unchanged."""
    harness = Harness(sdb, batch_size=20)
    real = Store.write

    async def slow_write(self: Store, batch: Batch, *, run_id: int, epoch: int) -> RunCounts:
        await asyncio.sleep(0.3)  # the next round's lookup runs before this commits
        return await real(self, batch, run_id=run_id, epoch=epoch)

    try:
        original = [raw_record(i) for i in range(1, 21)]
        await harness.sync(original)
        monkeypatch.setattr(Store, "write", slow_write)
        changed_then_back = [raw_record(i, version=1) for i in range(1, 21)] + original
        summary = await harness.sync(changed_then_back, page_size=20)
    finally:
        await harness.close()
    assert summary.status == "ok" and summary.counts.duplicates == 20
    rows = dict(await sdb.db.fetch_all("SELECT id, direccion FROM customers"))
    assert rows == {i: f"Calle {i} v0" for i in range(1, 21)}
