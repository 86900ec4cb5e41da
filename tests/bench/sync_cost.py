"""CPU per record of each stage of the sync's hot path, measured in isolation (process CPU time).

    python -m tests.bench.sync_cost --records N --runs R

Stages, on the simulator's records, with the daemon's own functions:
  decode    json.loads of the provider's page bytes (pages of 100)
  raw       quick_id + raw_digest_input + Keyring.raw_hash — what an unchanged re-sync compares
  validate  daemon.provider.records.parse_record (records whose raw hash differs)
  hash      Keyring.content_hash(record.canonical())
  encrypt   daemon.syncer.rows.customer_row — ciphertexts, last 4, mask, blind index
  sql       rows as literals (row_literal) in 500-row upserts (upsert_of_literals), encoded as sent
CPU time (not wall) so a busy machine inflates it far less than a wall clock.
Prints {"decode": us, "raw": us, "validate": us, "hash": us, "encrypt": us, "sql": us} (medians over runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

from daemon.crypto.keyring import Keyring
from daemon.provider.records import ParsedRecord, parse_record, quick_id, raw_digest_input
from daemon.provider.simulator import Simulator

__all__ = ("main", "measure")


def _cpu_us(fn: Callable[[], object], count: int) -> float:
    started = time.process_time()
    fn()
    return (time.process_time() - started) / count * 1e6


def measure(records: int, runs: int) -> dict[str, float]:
    from daemon.db.literals import row_literal
    from daemon.syncer.rows import customer_row, upsert_of_literals  # the syncer's own row and SQL builders

    raw = list(Simulator(records=records, seed=1).records())
    pages = [json.dumps(raw[i : i + 100]).encode() for i in range(0, len(raw), 100)]
    keyring = Keyring({"k1": os.urandom(32)}, active_key_id="k1", index_key=os.urandom(32))
    decoded = [r for page in pages for r in json.loads(page)]
    parsed = [p for r in decoded if isinstance(p := parse_record(r), ParsedRecord)]
    hashes = [keyring.content_hash(p.canonical()) for p in parsed]
    rows = [customer_row(p, h, keyring, h) for p, h in zip(parsed, hashes, strict=True)]

    def raw_hashes() -> object:
        return [quick_id(r) is not None and keyring.raw_hash(raw_digest_input(r) or b"") for r in decoded]

    stages: dict[str, Callable[[], object]] = {
        "decode": lambda: [json.loads(page) for page in pages],
        "raw": raw_hashes,
        "validate": lambda: [parse_record(r) for r in decoded],
        "hash": lambda: [keyring.content_hash(p.canonical()) for p in parsed],
        "encrypt": lambda: [customer_row(p, h, keyring) for p, h in zip(parsed, hashes, strict=True)],
        "sql": lambda: [
            upsert_of_literals([row_literal(r) for r in rows[i : i + 500]]).encode() for i in range(0, len(rows), 500)
        ],
    }
    results: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(runs):
        for name, fn in stages.items():  # interleaved, so drift hits every stage alike
            results[name].append(_cpu_us(fn, len(decoded)))
    return {name: statistics.median(values) for name, values in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sync_cost", description=__doc__)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.records, args.runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
