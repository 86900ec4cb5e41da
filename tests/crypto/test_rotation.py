"""Rotation and key usage in the real DB: batches, re-check under lock, failures left readable, metrics."""

from __future__ import annotations

import asyncio

import pytest

from daemon.crypto.keyring import Keyring, key_id_of
from daemon.crypto.rotation import rotate
from daemon.crypto.usage import ENCRYPTED_COLUMNS, INVALID_KEY_ID, key_usage, refresh_key_metrics
from daemon.db.database import Database
from daemon.errors import CryptoError
from daemon.observability.metrics import Metrics
from tests.crypto.support import INDEX_KEY, KEY_A, KEY_B, check_readable, read_all, ring, row_values, seed_rows

N_COLUMNS = len(ENCRYPTED_COLUMNS)


def _gauge(metrics: Metrics) -> dict[str, float]:
    return {s.labels["key_id"]: s.value for family in metrics.key_values.collect() for s in family.samples if s.labels}


async def test_usage_counts_per_key_and_column(own_db: Database) -> None:
    """key_usage reads key ids from the headers: per key id and column, NULLs not counted, junk flagged."""
    await seed_rows(own_db, ring("a", a=KEY_A), range(1, 11))
    await seed_rows(own_db, ring("b", a=KEY_A, b=KEY_B), range(11, 16))
    await own_db.execute("UPDATE customers SET ip_enc = NULL WHERE id <= 3")
    await own_db.execute("UPDATE customers SET foto_dni_enc = x'0203616263' WHERE id = 15")
    usage = await key_usage(own_db)
    assert usage.key_ids() == tuple(sorted(["a", "b", INVALID_KEY_ID]))
    assert usage.values("a") == 10 * N_COLUMNS - 3
    assert usage.counts["a"]["ip_enc"] == 7 and usage.counts["a"]["foto_dni_enc"] == 10
    assert usage.values("b") == 5 * N_COLUMNS - 1
    assert usage.values(INVALID_KEY_ID) == 1
    assert usage.not_on("b") == usage.values("a") + 1
    assert usage.missing_from(ring("b", a=KEY_A, b=KEY_B)) == {INVALID_KEY_ID: 1}


async def test_rotation_moves_every_value_and_touches_nothing_else(own_db: Database) -> None:
    """Every value ends under the active key, same plaintext; NULLs stay NULL; other columns unchanged."""
    await seed_rows(own_db, ring("a", a=KEY_A), range(1, 301))
    await seed_rows(own_db, ring("b", a=KEY_A, b=KEY_B), range(301, 351))
    await own_db.execute("UPDATE customers SET cuenta_numero_enc = NULL, deleted_at = NOW(6) WHERE id % 7 = 0")
    untouched = (
        "SELECT id, content_hash, updated_at, credit_card_num_bidx, credit_card_num_mask FROM customers ORDER BY id"
    )
    before = await own_db.fetch_all(untouched)
    version = await own_db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'")
    both = ring("b", a=KEY_A, b=KEY_B)
    seen: list[int] = []
    result = await rotate(own_db, both, batch_size=64, on_progress=lambda p: seen.append(p.done))
    nulls = len([i for i in range(1, 301) if i % 7 == 0])
    expected = 300 * N_COLUMNS - nulls
    assert result.progress.total == result.progress.done == expected
    assert result.progress.rows == 300 and result.progress.batches == 5
    assert seen == sorted(seen) and seen[-1] == expected
    assert result.complete and result.failures == ()
    assert result.remaining.key_ids() == ("b",)
    rows = await read_all(own_db)
    only_b = ring("b", b=KEY_B)  # key a could now be removed from the ring
    for row in rows:
        for column, blob in zip(ENCRYPTED_COLUMNS, row[1:], strict=True):
            if blob is None:
                assert column == "cuenta_numero_enc" and int(row[0]) % 7 == 0
            else:
                assert only_b.decrypt(blob, column=column, record_id=row[0]) == row_values(row[0])[column]
    assert await own_db.fetch_all(untouched) == before
    assert await own_db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'") == version
    again = await rotate(own_db, both)
    assert again.progress.total == again.progress.done == again.progress.rows == 0


async def test_rotation_rechecks_values_under_the_row_lock(own_db: Database) -> None:
    """A writer holding a row lock makes the batch wait; a value it wrote meanwhile is not overwritten."""
    await seed_rows(own_db, ring("a", a=KEY_A), range(1, 21))
    both = ring("b", a=KEY_A, b=KEY_B)
    async with own_db.transaction() as writer:
        await writer.fetch_all("SELECT id FROM customers WHERE id = 5 FOR UPDATE")
        fresh = both.encrypt("10.99.99.99", column="ip_enc", record_id=5)
        await writer.execute("UPDATE customers SET ip_enc = %s WHERE id = 5", [fresh])
        task = asyncio.create_task(rotate(own_db, both, batch_size=50))
        await asyncio.sleep(0.8)
        assert not task.done(), "the batch waits for the writer's row lock"
    result = await asyncio.wait_for(task, 20)
    assert result.complete
    assert result.progress.done == 20 * N_COLUMNS - 1  # row 5's ip was already under b once the lock was free
    blob = await own_db.fetch_value("SELECT ip_enc FROM customers WHERE id = 5")
    assert blob == fresh and both.decrypt(blob, column="ip_enc", record_id=5) == "10.99.99.99"


async def test_unreadable_values_are_skipped_reported_and_left_alone(own_db: Database) -> None:
    """A tampered value and one under an unknown key are reported as failures; the rest rotates."""
    await seed_rows(own_db, ring("a", a=KEY_A), range(1, 51))
    other = Keyring({"z": KEY_B}, active_key_id="z", index_key=INDEX_KEY)
    await own_db.execute(
        "UPDATE customers SET ip_enc = %s WHERE id = 7", [other.encrypt("1.2.3.4", column="ip_enc", record_id=7)]
    )
    tampered = bytearray(await own_db.fetch_value("SELECT geo_latitud_enc FROM customers WHERE id = 9"))
    tampered[-1] ^= 1
    await own_db.execute("UPDATE customers SET geo_latitud_enc = %s WHERE id = 9", [bytes(tampered)])
    failures: list[int] = []
    both = Keyring(
        {"a": KEY_A, "b": KEY_B}, active_key_id="b", index_key=INDEX_KEY, on_decrypt_failure=lambda: failures.append(1)
    )
    result = await rotate(own_db, both, batch_size=20)
    assert not result.complete
    assert sorted((rid, col) for rid, col, _ in result.failures) == [(7, "ip_enc"), (9, "geo_latitud_enc")]
    assert all("10." not in reason and "-34." not in reason for *_, reason in result.failures)
    assert result.progress.done == 50 * N_COLUMNS - 2 and result.progress.failed == 2
    assert len(failures) == 2
    assert result.remaining.values("z") == 1 and result.remaining.values("a") == 1
    assert key_id_of(await own_db.fetch_value("SELECT ip_enc FROM customers WHERE id = 7")) == "z"
    assert await own_db.fetch_value("SELECT geo_latitud_enc FROM customers WHERE id = 9") == bytes(tampered)


async def test_reindex_rederives_blind_indexes(own_db: Database) -> None:
    """After INDEX_KEY changed, `reindex` recomputes every card blind index from the decrypted PAN."""
    await seed_rows(own_db, ring("a", a=KEY_A), range(1, 31))
    new_index = Keyring({"a": KEY_A}, active_key_id="a", index_key=KEY_B)
    result = await rotate(own_db, new_index, batch_size=8, reindex=True)
    assert result.complete and result.progress.total == result.progress.done == 30 and result.progress.rows == 30
    for record_id, bidx in await own_db.fetch_all("SELECT id, credit_card_num_bidx FROM customers"):
        assert bidx == new_index.blind_index(row_values(record_id)["credit_card_num_enc"])
    assert (await rotate(own_db, new_index, reindex=True)).progress.rows == 0  # nothing left to change


async def test_rotation_needs_an_active_key(own_db: Database) -> None:
    """A keyring without an active key cannot rotate: CryptoError before anything is written."""
    with pytest.raises(CryptoError, match="ENCRYPTION_ACTIVE_KEY"):
        await rotate(own_db, ring(None))


async def test_refresh_key_metrics(own_db: Database, metrics: Metrics) -> None:
    """The gauge shows every ring key (0 when unused) and every stored key id; stale series are removed."""
    await seed_rows(own_db, ring("a", a=KEY_A), range(1, 5))
    metrics.key_values.labels(key_id="retired").set(3)
    both = ring("b", a=KEY_A, b=KEY_B)
    await refresh_key_metrics(own_db, both, metrics)
    assert _gauge(metrics) == {"a": 4 * N_COLUMNS, "b": 0}
    await rotate(own_db, both)
    await refresh_key_metrics(own_db, ring("b", b=KEY_B), metrics)
    assert _gauge(metrics) == {"b": 4 * N_COLUMNS}
    rows = await read_all(own_db)
    assert check_readable(rows, ring("b", b=KEY_B)) == {"b": 4 * N_COLUMNS}
