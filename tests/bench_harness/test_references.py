"""The references' own pieces: limit_upsert's rows are the daemon's rows; the bench provider is the simulator."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from daemon.crypto.keyring import Keyring
from daemon.db.database import Database
from daemon.provider.records import ParsedRecord, parse_record
from tests.bench.limit_upsert import WRITE_COLUMNS, customer_row, upsert_sql
from tests.support.samples import PROVIDER_SAMPLE

RAW = PROVIDER_SAMPLE


def _keyring() -> Keyring:
    return Keyring({"b1": os.urandom(32)}, active_key_id="b1", index_key=os.urandom(32))


async def test_limit_rows_fit_the_daemon_schema(db: Database) -> None:
    """limit_upsert's multi-row upsert stores the daemon's row: ciphertexts readable, mask and hash set."""
    keyring = _keyring()
    ids = (9_100_000_001, 9_100_000_002)
    records = [parse_record(RAW | {"id": str(i)}) for i in ids]
    assert all(isinstance(r, ParsedRecord) for r in records)
    rows = [customer_row(r, keyring) for r in records if isinstance(r, ParsedRecord)]
    assert all(len(row) == len(WRITE_COLUMNS) for row in rows)
    try:
        for _ in range(2):  # the second time, every row is an update of the first
            async with db.transaction() as tx:
                await tx.execute(upsert_sql(len(rows)), [v for row in rows for v in row])
        stored = await db.fetch_one(
            "SELECT credit_card_num_enc, credit_card_num_mask, cuenta_numero_last4, fec_alta, content_hash "
            "FROM customers WHERE id = %s",
            (ids[0],),
        )
        assert stored is not None
        assert keyring.decrypt(stored[0], column="credit_card_num_enc", record_id=ids[0]) == "4111-1111-1111-1111"
        assert stored[1] == "***************1111"  # the provider's format and length
        assert stored[2] == "3296"
        assert stored[3].isoformat() == "2021-07-31T00:11:06.741000"
        assert len(stored[4]) == 32
    finally:
        await db.execute("DELETE FROM customers WHERE id IN (%s, %s)", ids)


async def test_bench_provider_serves_the_simulators_records(aiohttp_client: Any) -> None:
    """Pages are the simulator's records in order; the `:10` dataset has exactly every 10th record changed."""
    simulator = pytest.importorskip("daemon.provider.simulator")
    from tests.bench.provider import Dataset, build, make_app

    snapshots = build(7, [Dataset("base", 50, 0), Dataset("changed", 50, 10)])
    client = await aiohttp_client(make_app(snapshots))
    expected = list(simulator.Simulator(records=50, seed=7).records())
    pages = []
    for page in range(1, 5):
        response = await client.get("/base/api/v1/usuarios", params={"page": str(page), "limit": "20"})
        assert response.status == 200
        pages.append(json.loads(await response.read()))
    assert [len(p) for p in pages] == [20, 20, 10, 0]
    assert [r for p in pages for r in p] == expected
    whole = json.loads(await (await client.get("/changed/api/v1/usuarios")).read())
    differing = [i + 1 for i, (a, b) in enumerate(zip(whole, expected, strict=True)) if a != b]
    assert differing == list(range(1, 51, 10))
    assert (await client.get("/nope/api/v1/usuarios")).status == 404
    assert (await client.get("/base/api/v1/usuarios", params={"page": "0", "limit": "5"})).status == 400
