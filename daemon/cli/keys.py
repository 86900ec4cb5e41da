"""`customers-mngr keys generate|status|rotate`: key material, key usage, and rotation.

`generate` prints new key material (stdout only; nothing is logged or
stored). `status` and `rotate` read the configured ring like the daemon does
and work against the real DB, in production too. Their results go to stdout
(a table, or JSON), their log lines to stderr, so `--json` output can be piped.

Exit codes: 0 done; 1 `status` found values under a key id missing from the
ring, or `rotate` left values it could not read; 2 bad configuration;
3 DB unreachable.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from daemon.cli.common import fail, load_or_exit, run_async
from daemon.config import Settings
from daemon.config.crypto import ENCRYPTION_ACTIVE_KEY, KEY_BYTES, KEY_ID_RE
from daemon.crypto.keyring import Keyring, load_keyring
from daemon.crypto.rotation import RotationProgress, RotationResult, rotate
from daemon.crypto.usage import ENCRYPTED_COLUMNS, KeyUsage, key_usage
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.db.migrate import schema_status
from daemon.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, DatabaseError
from daemon.observability.logs import configure_logging, get_logger
from daemon.observability.metrics import Metrics

__all__ = ("register",)

_PROGRESS_EVERY_S = 0.5
_PROGRESS_LOG_EVERY_S = 10.0
log = get_logger("customers_mngr.cli")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "keys",
        help="generate keys, show key usage, rotate to the active key",
        description="Encryption key management. Rotation runbook: README.md, 'Rotating a key'.",
    )
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)

    generate = actions.add_parser(
        "generate",
        help="print a new key id and key in the ENCRYPTION_KEYS format",
        description="Print a new random 256-bit key and its key id as an ENCRYPTION_KEYS entry (stdout only; "
        "nothing is stored or logged). Put it in the secret store, never in a file in the repository.",
    )
    generate.add_argument(
        "--id", dest="key_id", default=None, help="key id (1-16 of A-Z a-z 0-9 . _ -); default kYYYYMMDD-xxxx"
    )
    generate.add_argument("--index", action="store_true", help="also print a new INDEX_KEY (new installations)")
    generate.add_argument("--json", action="store_true", help="print one JSON object")
    generate.set_defaults(handler=handle_generate)

    status = actions.add_parser(
        "status",
        help="how many stored values each key id encrypts (per column)",
        description="Count stored values per key id and column, from the ciphertext headers (nothing is "
        "decrypted). A key may be removed from ENCRYPTION_KEYS only when it shows 0 values. "
        "Exit 1 if values use a key id missing from the ring (they cannot be read).",
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=handle_status)

    rotation = actions.add_parser(
        "rotate",
        help="re-encrypt every value not under the active key",
        description="Re-encrypt, in batches, every stored value whose key id is not ENCRYPTION_ACTIVE_KEY. "
        "Each batch is one transaction with its rows locked; safe to interrupt or kill at any point and "
        "resumable by running it again. Progress on a terminal (stderr), one JSON summary line at the end. "
        "Exit 1 if some values could not be read (they are left as they were).",
    )
    rotation.add_argument("--batch-size", type=_positive_int, default=500, help="rows per transaction (500)")
    rotation.add_argument(
        "--pause", type=float, default=0.0, metavar="SECONDS", help="sleep between batches to spare a busy DB (0)"
    )
    rotation.add_argument(
        "--reindex",
        action="store_true",
        help="also re-derive every card blind index with the current INDEX_KEY (after changing INDEX_KEY)",
    )
    rotation.set_defaults(handler=handle_rotate)


def _positive_int(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError("must be between 1 and 100000")
    return value


# --- generate ---------------------------------------------------------------------------------


def handle_generate(args: argparse.Namespace, _env: Mapping[str, str]) -> int:
    key_id = args.key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    if not KEY_ID_RE.match(key_id):
        fail("keys generate: --id must be 1-16 of A-Z a-z 0-9 . _ -")
        return EXIT_CONFIG
    key = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    index_key = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() if args.index else None
    if args.json:
        out: dict[str, Any] = {"key_id": key_id, "encryption_keys_entry": {key_id: key}}
        if index_key:
            out["index_key"] = index_key
        print(json.dumps(out))
        return EXIT_OK
    print(f"key id: {key_id}")
    print("ENCRYPTION_KEYS entry (add it to the existing JSON object; keep the other keys until unused):")
    print(f'  "{key_id}": "{key}"')
    print(f"new ring alone: {json.dumps({key_id: key})}")
    if index_key:
        print("INDEX_KEY (new installations only: changing it needs `keys rotate --reindex`):")
        print(f"  {index_key}")
    print("Then: deploy with the key in the ring, set ENCRYPTION_ACTIVE_KEY, run `keys rotate` (README).")
    return EXIT_OK


# --- status -----------------------------------------------------------------------------------


def handle_status(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = _settings(env)
    return run_async(_status(settings, as_json=args.json), env=env)


async def _status(settings: Settings, *, as_json: bool) -> int:
    keyring = load_keyring(settings.crypto, production=settings.production)
    async with _database(settings) as db:
        await _require_schema(db)
        usage = await key_usage(db)
    report = status_report(usage, keyring)
    print(json.dumps(report) if as_json else _status_table(report))
    return EXIT_FAILURE if report["unreadable_values"] else EXIT_OK


def status_report(usage: KeyUsage, keyring: Keyring) -> dict[str, Any]:
    """Per key id (every ring key, and any key id found in the data): state and counts."""
    rows = []
    for key_id in dict.fromkeys([*keyring.key_ids, *usage.key_ids()]):
        values = usage.values(key_id)
        in_ring = keyring.has_key(key_id)
        active = key_id == keyring.active_key_id
        rows.append(
            {
                "key_id": key_id,
                "active": active,
                "in_ring": in_ring,
                "values": values,
                "columns": dict(usage.counts.get(key_id, dict.fromkeys(ENCRYPTED_COLUMNS, 0))),
                "removable": in_ring and not active and values == 0,
            }
        )
    missing = usage.missing_from(keyring)
    return {
        "active_key_id": keyring.active_key_id,
        "total_values": usage.total,
        "to_rotate": usage.not_on(keyring.active_key_id) if keyring.active_key_id else None,
        "unreadable_values": sum(missing.values()),
        "keys": rows,
    }


def _status_table(report: dict[str, Any]) -> str:
    headers = ["KEY ID", "STATE", "VALUES", *(c.removesuffix("_enc") for c in ENCRYPTED_COLUMNS)]
    lines = [headers]
    for row in report["keys"]:
        if row["active"]:
            state = "active"
        elif not row["in_ring"]:
            state = "NOT IN RING (unreadable)"
        elif row["removable"]:
            state = "unused: removable"
        else:
            state = "in use: rotate first"
        lines.append([row["key_id"], state, str(row["values"]), *(str(row["columns"][c]) for c in ENCRYPTED_COLUMNS)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    text = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines]
    active = report["active_key_id"] or "(none: ENCRYPTION_ACTIVE_KEY unset)"
    summary = f"active key: {active}; {report['total_values']} encrypted values"
    if report["to_rotate"]:
        summary += f"; {report['to_rotate']} under other keys (run `keys rotate`)"
    if report["unreadable_values"]:
        summary += f"; {report['unreadable_values']} UNREADABLE: add their key back to ENCRYPTION_KEYS"
    return "\n".join([summary, *text])


# --- rotate -----------------------------------------------------------------------------------


def handle_rotate(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = _settings(env)
    return run_async(
        _rotate(settings, batch_size=args.batch_size, pause_s=max(0.0, args.pause), reindex=args.reindex), env=env
    )


async def _rotate(settings: Settings, *, batch_size: int, pause_s: float, reindex: bool) -> int:
    metrics = Metrics()
    keyring = load_keyring(
        settings.crypto, production=settings.production, on_decrypt_failure=metrics.decrypt_failures.inc
    )
    if keyring.active_key_id is None:
        fail(f"configuration error: {ENCRYPTION_ACTIVE_KEY.name}: is not set; expected the key id to rotate to")
        return EXIT_CONFIG
    progress = _ProgressLine(sys.stderr)
    async with _database(settings, metrics=metrics) as db:
        await _require_schema(db)
        try:
            result = await rotate(
                db, keyring, batch_size=batch_size, pause_s=pause_s, reindex=reindex, on_progress=progress
            )
        finally:
            progress.close()
    print(json.dumps(rotation_summary(result, reindex=reindex)), flush=True)
    return EXIT_OK if not result.failures else EXIT_FAILURE


def rotation_summary(result: RotationResult, *, reindex: bool) -> dict[str, Any]:
    p = result.progress
    return {
        "event": "keys_rotated",
        "active_key_id": p.active_key_id,
        "reindex": reindex,
        "total": p.total,
        "rotated": p.done,
        "failed": p.failed,
        "rows": p.rows,
        "batches": p.batches,
        "seconds": round(p.elapsed_s, 3),
        "values_per_s": round(p.rate, 1),
        "remaining": {key_id: result.remaining.values(key_id) for key_id in result.remaining.key_ids()},
        "complete": result.complete,
    }


class _ProgressLine:
    """done/total, percentage and rate: one rewritten stderr line on a terminal, else a log line now and then."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = _isatty(stream)
        self._every = _PROGRESS_EVERY_S if self._tty else _PROGRESS_LOG_EVERY_S
        self._last = time.monotonic()
        self._shown = False

    def __call__(self, progress: RotationProgress) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        share = 100.0 * progress.done / progress.total if progress.total else 100.0
        if not self._tty:  # e.g. an ECS one-off task: progress lands in the log stream
            log.info(
                "key_rotation_progress",
                done=progress.done,
                total=progress.total,
                percent=round(share, 1),
                values_per_s=round(progress.rate),
                batches=progress.batches,
            )
            return
        self._stream.write(
            f"\rkeys rotate: {progress.done}/{progress.total} values ({share:.1f}%), "
            f"{progress.rate:.0f} values/s, {progress.batches} batches\x1b[K"
        )
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()


# --- shared -----------------------------------------------------------------------------------


def _settings(env: Mapping[str, str]) -> Settings:
    # The api mode's settings: keys and DB, nothing about the provider; ENCRYPTION_ACTIVE_KEY is
    # read (and checked against the ring) when set. Logs go to stderr: stdout carries the result.
    settings = load_or_exit(env, mode="api")
    configure_logging(settings.log, stream=sys.stderr)
    return settings


def _database(settings: Settings, *, metrics: Metrics | None = None) -> Any:
    return open_database(settings.db, metrics=metrics or Metrics(), create=False, pool_min=1, pool_max=1)


async def _require_schema(db: Database) -> None:
    if (await schema_status(db)).current < 1:
        raise DatabaseError("the schema is not migrated yet: run `customers-mngr migrate` first")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
