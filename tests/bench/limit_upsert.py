"""Reference `limit_upsert`: the fastest this machine's MySQL takes the daemon's rows.

    python -m tests.bench.limit_upsert --url PROVIDER_LIST_URL --database mysql://... [--batch 500] [--conns 2]

Before the clock: fetch every record, validate it (`parse_record`), and build
the very row the daemon stores — every column the field policy implies,
AES-256-GCM ciphertexts bound to their column and id, last 4, mask, blind
index, keyed content hash. On the clock: only multi-row
`INSERT ... ON DUPLICATE KEY UPDATE` statements of `--batch` rows, one
transaction each, with `--conns` asyncmy connections in flight. The database
must exist and be migrated (`customers-mngr migrate`). Prints one JSON line:
{"records": N, "seconds": S, "prepare_s": P, "upsert_cpu_s": C} (C: this process's CPU
while upserting, i.e. the client side of the writes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncmy

from daemon import policy
from daemon.crypto.devkeys import load_or_create_dev_keys
from daemon.crypto.keyring import Keyring
from daemon.crypto.masks import display_mask, last4
from daemon.provider.records import ParsedRecord, parse_record

__all__ = ("WRITE_COLUMNS", "customer_row", "main", "upsert_sql")

_COLUMNS = tuple(policy.columns())
WRITE_COLUMNS = (*(c.name for c in _COLUMNS), "content_hash")
_ROW = "(" + ", ".join(["%s"] * len(WRITE_COLUMNS)) + ")"


def upsert_sql(rows: int) -> str:
    head = f"INSERT INTO customers ({', '.join(f'`{c}`' for c in WRITE_COLUMNS)}) VALUES "
    tail = (
        " ON DUPLICATE KEY UPDATE "
        + ", ".join(f"`{c}` = VALUES(`{c}`)" for c in WRITE_COLUMNS if c != "id")
        + ", `updated_at` = NOW(6), `deleted_at` = NULL"
    )
    return head + ", ".join([_ROW] * rows) + tail


def _stored(column: policy.Column, value: object, record_id: int, keyring: Keyring) -> object:
    text = value if isinstance(value, str) else str(value)
    if column.role == "ciphertext":
        return keyring.encrypt(text, column=column.name, record_id=record_id)
    if column.role == "last4":
        return last4(text)
    if column.role == "mask":
        return display_mask(text)
    if column.role == "blind_index":
        return keyring.blind_index(text)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def customer_row(record: ParsedRecord, keyring: Keyring) -> tuple[object, ...]:
    """The daemon's row of one record (every policy column, then the content hash)."""
    row: list[object] = []
    for column in _COLUMNS:
        value = record.id if column.field == "id" else record.values.get(column.field)
        row.append(None if value is None else _stored(column, value, record.id, keyring))
    row.append(keyring.content_hash(record.canonical()))
    return tuple(row)


def prepare(url: str, batch: int, key_file: Path | None) -> list[list[object]]:
    """Fetch, validate and encrypt everything; return the flat parameters of each batch."""
    with urllib.request.urlopen(url, timeout=300) as response:
        raw = json.loads(response.read())
    if key_file is not None:  # the daemon's development keys: its API can then read these rows
        dev = load_or_create_dev_keys(key_file)
        keyring = Keyring(dev.keys, active_key_id=dev.active_key_id, index_key=dev.index_key)
    else:
        keyring = Keyring({"bench": os.urandom(32)}, active_key_id="bench", index_key=os.urandom(32))
    rows = [customer_row(p, keyring) for r in raw if isinstance(p := parse_record(r), ParsedRecord)]
    return [[v for row in rows[i : i + batch] for v in row] for i in range(0, len(rows), batch)]


async def upsert(database_url: str, batches: Sequence[list[object]], *, conns: int) -> float:
    url = urlsplit(database_url)
    connections = [
        await asyncmy.connect(
            host=url.hostname or "127.0.0.1",
            port=url.port or 3306,
            user=unquote(url.username or "root"),
            password=unquote(url.password or ""),
            db=url.path.lstrip("/"),
            autocommit=False,
        )
        for _ in range(conns)
    ]
    width = len(WRITE_COLUMNS)
    queue: asyncio.Queue[list[object]] = asyncio.Queue()
    for params in batches:
        queue.put_nowait(params)

    async def worker(conn: asyncmy.Connection) -> None:
        while not queue.empty():
            params = queue.get_nowait()
            async with conn.cursor() as cur:
                await cur.execute(upsert_sql(len(params) // width), params)
            await conn.commit()

    started = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as tg:
            for conn in connections:
                tg.create_task(worker(conn))
        return time.perf_counter() - started
    finally:
        for conn in connections:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.limit_upsert", description=__doc__)
    parser.add_argument("--url", required=True, help="the provider's list URL (fetched whole, before the clock)")
    parser.add_argument("--database", required=True, help="mysql://... of an existing, migrated, empty database")
    parser.add_argument("--batch", type=int, default=500, help="rows per statement and transaction")
    parser.add_argument("--conns", type=int, default=2, help="connections in flight")
    parser.add_argument("--key-file", type=Path, default=None, help="encrypt with this DEV_KEY_FILE's keys")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    batches = prepare(args.url, args.batch, args.key_file)
    prepare_s = time.perf_counter() - started
    cpu_before = time.process_time()
    seconds = asyncio.run(upsert(args.database, batches, conns=args.conns))
    upsert_cpu_s = time.process_time() - cpu_before
    records = sum(len(b) for b in batches) // len(WRITE_COLUMNS)
    result = {"records": records, "seconds": round(seconds, 4), "prepare_s": round(prepare_s, 3)}
    print(json.dumps(result | {"upsert_cpu_s": round(upsert_cpu_s, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
