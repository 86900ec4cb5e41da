"""Storage of a snapshot: batched upserts, change detection, soft deletes, quarantine, runs (hand-built pages)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from daemon import policy
from daemon.crypto.masks import display_mask, last4
from daemon.provider.records import ParsedRecord, parse_record
from daemon.syncer.rows import WRITE_COLUMNS
from daemon.syncer.runner import EMPTY_SNAPSHOT
from tests.syncer.conftest import SyncDb
from tests.syncer.support import Harness, card, raw_record


@pytest.fixture
async def harness(sdb: SyncDb) -> AsyncIterator[Harness]:
    h = Harness(sdb, batch_size=50)
    yield h
    await h.close()


async def _version(sdb: SyncDb) -> int:
    return int(await sdb.db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'"))


async def _stamps(sdb: SyncDb) -> list[tuple[object, ...]]:
    return list(await sdb.db.fetch_all("SELECT id, updated_at, content_hash, deleted_at FROM customers ORDER BY id"))


def test_columns_come_from_the_policy() -> None:
    """The upsert writes exactly the policy's columns plus the content hash, and never a CVV column."""
    assert (*(c.name for c in policy.columns()), "content_hash", "raw_hash") == WRITE_COLUMNS
    assert not any("ccv" in name or "cvv" in name for name in WRITE_COLUMNS)


async def test_first_load_stores_every_field_per_policy(harness: Harness, sdb: SyncDb) -> None:
    """First run inserts all records, one transaction per batch; every value decrypts; masks, last 4, index right."""
    records = [raw_record(i) for i in range(1, 121)]
    summary = await harness.sync(records)
    assert summary.status == "ok" and summary.complete
    c = summary.counts
    assert (c.pages, c.fetched, c.inserted, c.updated, c.unchanged, c.deleted) == (3, 120, 120, 0, 0, 0)
    assert await _version(sdb) == 3, "one data_version bump per batch of 50"
    names = ", ".join(f"`{n}`" for n in WRITE_COLUMNS)
    rows = await sdb.db.fetch_all(f"SELECT {names} FROM customers ORDER BY id")
    assert len(rows) == 120
    ring = harness.keyring
    for raw, row in zip(records, rows, strict=True):
        parsed = parse_record(raw)
        assert isinstance(parsed, ParsedRecord)
        stored = dict(zip(WRITE_COLUMNS, row, strict=True))
        assert stored["id"] == parsed.id
        for column in policy.columns():
            value = parsed.values.get(column.field)
            if column.role == "ciphertext":
                assert ring.decrypt(stored[column.name], column=column.name, record_id=parsed.id) == value
            elif column.role == "last4":
                assert stored[column.name] == last4(str(value))
            elif column.role == "mask":
                assert stored[column.name] == display_mask(str(value))
                assert stored[column.name].endswith(card(parsed.id)[-4:])
            elif column.role == "blind_index":
                assert stored[column.name] == ring.blind_index(card(parsed.id))
        assert stored["user_name"] == raw["user_name"] and stored["codigo_zip"] == raw["codigo_zip"]
        assert stored["content_hash"] == ring.content_hash(parsed.canonical())
    run = await sdb.db.fetch_one(
        "SELECT status, inserted, fetched, pages FROM sync_runs WHERE id = %s", (summary.run_id,)
    )
    assert run == ("ok", 120, 120, 3)


async def test_unchanged_resync_writes_nothing(harness: Harness, sdb: SyncDb) -> None:
    """A second run over the same snapshot counts everything unchanged and touches no row nor data_version."""
    records = [raw_record(i) for i in range(1, 81)]
    await harness.sync(records)
    before, version = await _stamps(sdb), await _version(sdb)
    summary = await harness.sync(records)
    assert summary.status == "ok"
    assert (summary.counts.unchanged, summary.counts.inserted, summary.counts.updated) == (80, 0, 0)
    assert await _stamps(sdb) == before
    assert await _version(sdb) == version


async def test_a_change_is_detected_and_written(harness: Harness, sdb: SyncDb) -> None:
    """Changing one public and one encrypted field of one record updates that row only."""
    records = [raw_record(i) for i in range(1, 61)]
    await harness.sync(records)
    before = {row[0]: row for row in await _stamps(sdb)}
    version = await _version(sdb)
    records[9] = raw_record(10, version=1, ip="192.0.2.77")
    summary = await harness.sync(records)
    assert (summary.counts.updated, summary.counts.unchanged) == (1, 59)
    after = {row[0]: row for row in await _stamps(sdb)}
    assert [i for i in after if after[i] != before[i]] == [10]
    assert await _version(sdb) == version + 1
    direccion, ip_enc = await sdb.db.fetch_one("SELECT direccion, ip_enc FROM customers WHERE id = 10") or ()
    assert direccion == "Calle 10 v1"
    assert harness.keyring.decrypt(ip_enc, column="ip_enc", record_id=10) == "192.0.2.77"


async def test_deletion_then_restore(harness: Harness, sdb: SyncDb) -> None:
    """A record gone from a complete snapshot is soft-deleted; when it reappears it is restored."""
    records = [raw_record(i) for i in range(1, 121)]
    await harness.sync(records)
    gone = [r for r in records if int(str(r["id"])) not in (7, 77)]
    summary = await harness.sync(gone)
    assert summary.counts.deleted == 2 and summary.status == "ok"
    deleted = await sdb.db.fetch_all("SELECT id FROM customers WHERE deleted_at IS NOT NULL ORDER BY id")
    assert [r[0] for r in deleted] == [7, 77]
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers") == 120, "soft delete keeps the row"
    summary = await harness.sync(records)
    assert (summary.counts.restored, summary.counts.unchanged, summary.counts.deleted) == (2, 118, 0)
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers WHERE deleted_at IS NOT NULL") == 0


async def test_incomplete_snapshot_deletes_nothing(harness: Harness, sdb: SyncDb) -> None:
    """The provider failing on page 2 of 3: the run is failed, page 1 is stored, nothing is deleted."""
    await harness.sync([raw_record(i) for i in range(1, 121)])
    changed = [raw_record(i, version=2) for i in range(1, 41)]  # page 1 of the new snapshot only
    summary = await harness.sync([*changed, *(raw_record(i) for i in range(200, 280))], fail_after=1)
    assert summary.status == "failed" and not summary.complete
    assert summary.error is not None and "page 2" in summary.error
    assert (summary.counts.pages, summary.counts.updated, summary.counts.deleted) == (1, 40, 0)
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers WHERE deleted_at IS NOT NULL") == 0
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers") == 120
    row = await sdb.db.fetch_one("SELECT status, complete, error FROM sync_runs WHERE id = %s", (summary.run_id,))
    assert row == ("failed", 0, summary.error)


async def test_invalid_records_are_quarantined_without_sensitive_values(harness: Harness, sdb: SyncDb) -> None:
    """Invalid records go to sync_quarantine with every reason and no card, account, CVV, IP or DNI URL."""
    bad = raw_record(5, fec_alta="2021-15-40T00:00:00Z", ip="999.1.1.1", cantidad_compras_realizadas="many")
    not_object = ["not", "a", "record"]
    summary = await harness.sync([raw_record(1), bad, not_object, raw_record(3)])
    assert summary.status == "partial"
    assert (summary.counts.inserted, summary.counts.rejected) == (2, 2)
    rows = await sdb.db.fetch_all(
        "SELECT run_id, provider_id, reasons, record FROM sync_quarantine ORDER BY provider_id IS NULL, id"
    )
    assert len(rows) == 2
    run_id, provider_id, reasons, record = rows[0]
    assert run_id == summary.run_id and provider_id == "5"
    assert {(r["field"], r["rule"]) for r in json.loads(reasons)} >= {
        ("fec_alta", "invalid_date"),
        ("ip", "invalid_ipv4"),
        ("cantidad_compras_realizadas", "invalid_number"),
    }
    kept = json.loads(record)
    assert kept["user_name"] == "user5"
    for secret in (
        bad["credit_card_num"],
        "5200000000000005",
        bad["cuenta_numero"],
        bad["credit_card_ccv"],
        "999.1.1.1",
    ):
        assert str(secret) not in record
    assert not set(kept) & policy.sensitive_field_names()
    assert rows[1][1] is None and json.loads(rows[1][2]) == [{"field": "record", "rule": "not_an_object"}]
    assert await sdb.db.fetch_value("SELECT status FROM sync_runs WHERE id = %s", (summary.run_id,)) == "partial"


async def test_a_quarantined_record_keeps_its_stored_row(harness: Harness, sdb: SyncDb) -> None:
    """A stored record that turns invalid is quarantined, not soft-deleted (the provider still has it)."""
    await harness.sync([raw_record(i) for i in range(1, 4)])
    summary = await harness.sync([raw_record(1), raw_record(2, ip="not an ip"), raw_record(3)])
    assert (summary.counts.rejected, summary.counts.deleted, summary.status) == (1, 0, "partial")
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL") == 3


async def test_duplicate_ids_last_one_wins(harness: Harness, sdb: SyncDb) -> None:
    """An id twice in one snapshot, in the same batch or batches apart: the last one is stored, counted."""
    records = [raw_record(i) for i in range(1, 101)]
    records.insert(10, raw_record(3, version=9))  # same batch as id 3, after it
    records.append(raw_record(4, version=7))  # a later batch than id 4
    summary = await harness.sync(records)
    assert summary.counts.duplicates == 2
    assert harness.metrics.sync_anomalies.labels(kind="duplicate_id")._value.get() == 2
    rows = dict(await sdb.db.fetch_all("SELECT id, direccion FROM customers WHERE id IN (3, 4)"))
    assert rows == {3: "Calle 3 v9", 4: "Calle 4 v7"}
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers") == 100


async def test_empty_snapshot_deletes_nothing(harness: Harness, sdb: SyncDb) -> None:
    """A complete but empty answer while rows are stored: deletions skipped, status partial."""
    await harness.sync([raw_record(i) for i in range(1, 11)])
    summary = await harness.sync([])
    assert summary.status == "partial" and summary.error == EMPTY_SNAPSHOT
    assert await sdb.db.fetch_value("SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL") == 10


async def test_outcome_metrics_are_recorded(harness: Harness) -> None:
    """sync_records by outcome, sync_runs by status and the timestamps follow the runs."""
    m = harness.metrics
    await harness.sync([raw_record(i) for i in range(1, 11)])
    await harness.sync([raw_record(i) for i in range(1, 10)] + [raw_record(11, ip="bad")])
    assert m.sync_records.labels(outcome="inserted")._value.get() == 10
    assert m.sync_records.labels(outcome="unchanged")._value.get() == 9
    assert m.sync_records.labels(outcome="rejected")._value.get() == 1
    assert m.sync_records.labels(outcome="deleted")._value.get() == 1
    assert m.sync_runs.labels(status="ok")._value.get() == 1
    assert m.sync_runs.labels(status="partial")._value.get() == 1
    assert m.sync_last_success._value.get() > 0 and m.sync_last_run._value.get() > 0


async def test_unknown_fields_are_ignored_and_counted(harness: Harness, sdb: SyncDb) -> None:
    """Extra provider fields are not stored; they are counted in the run and the metric."""
    summary = await harness.sync([raw_record(1, nickname="x", extra_flag=True), raw_record(2)])
    assert (summary.status, summary.counts.inserted, summary.counts.unknown_fields) == ("ok", 2, 2)
    assert harness.metrics.sync_unknown_fields._value.get() == 2
    assert await sdb.db.fetch_value("SELECT unknown_fields FROM sync_runs WHERE id = %s", (summary.run_id,)) == 2
