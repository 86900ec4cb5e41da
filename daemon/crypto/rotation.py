"""Key rotation: re-encrypt, batch by batch, every stored value not written with the active key.

Safe to kill at any point (kill -9 included): each batch is one transaction
that locks its rows (`FOR UPDATE`, so a concurrent syncer write waits for it),
re-encrypts and commits — a value is either still under its old key or
already under the active one, and both are in the configured ring. Resuming
is just running it again: only values whose header still names another key
are selected, so finished work is never redone.

    candidates   SELECT id ... WHERE id > cursor AND <some value not on the active key>
                 (a plain read: nothing is locked while scanning)
    batch        BEGIN; SELECT ... WHERE id IN (...) FOR UPDATE   (only these rows are locked)
                 re-check each value's header, decrypt, encrypt with the active key
                 UPDATE each row; COMMIT

Nothing but ciphertext changes: `updated_at`, `content_hash` and
`data_version` stay as they are, because no reader sees a different value.
The blind index is re-derived only when asked (`reindex`, after INDEX_KEY
changed): it needs the decrypted PAN.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from daemon.crypto.keyring import Keyring, key_id_of
from daemon.crypto.usage import ENCRYPTED_COLUMNS, SCAN_TIMEOUT_S, KeyUsage, key_usage
from daemon.db.database import Database, Row, Session
from daemon.errors import CryptoError, DatabaseUnavailable
from daemon.observability.logs import get_logger
from daemon.policy import CUSTOMERS_TABLE, Classification, encrypted_fields

__all__ = ("RotationProgress", "RotationResult", "rotate")

log = get_logger("customers_mngr.crypto")

PAN_COLUMN: Final = next(f.enc_column for f in encrypted_fields() if f.classification is Classification.PCI)
BIDX_COLUMN: Final = PAN_COLUMN.removesuffix("_enc") + "_bidx"
_COLS: Final = ", ".join(ENCRYPTED_COLUMNS)
# A value is stale when present and its header (version byte, key id) is not the active key's.
_STALE: Final = " OR ".join(f"({c} IS NOT NULL AND LEFT({c}, %s) <> %s)" for c in ENCRYPTED_COLUMNS)

SELECT_CANDIDATES: Final = f"SELECT id FROM {CUSTOMERS_TABLE} WHERE id > %s AND ({_STALE}) ORDER BY id LIMIT %s"  # noqa: S608 - policy names
SELECT_PAN_ROWS: Final = (
    f"SELECT id FROM {CUSTOMERS_TABLE} WHERE id > %s AND {PAN_COLUMN} IS NOT NULL ORDER BY id LIMIT %s"  # noqa: S608
)
COUNT_PAN_ROWS: Final = f"SELECT COUNT(*) FROM {CUSTOMERS_TABLE} WHERE {PAN_COLUMN} IS NOT NULL"  # noqa: S608
LOCK_ROWS: Final = (
    f"SELECT id, {_COLS}, {BIDX_COLUMN} FROM {CUSTOMERS_TABLE} WHERE id IN ({{ids}}) ORDER BY id FOR UPDATE"  # noqa: S608
)
UPDATE_ROW: Final = (
    f"UPDATE {CUSTOMERS_TABLE} SET {', '.join(f'{c} = %s' for c in ENCRYPTED_COLUMNS)}, "  # noqa: S608
    f"{BIDX_COLUMN} = %s WHERE id = %s"
)

_BATCH_ATTEMPTS: Final = 5  # deadlocks, lock wait timeouts, a dropped connection: the batch is retried
_MAX_FAILURES_LOGGED: Final = 20


@dataclass(slots=True)
class RotationProgress:
    """Where a rotation stands; `done`/`total` count values (blind indexes too when reindexing)."""

    active_key_id: str
    total: int
    done: int = 0
    failed: int = 0
    rows: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        """Values re-encrypted per second so far."""
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RotationResult:
    progress: RotationProgress
    remaining: KeyUsage  # usage by key id after the run
    failures: tuple[tuple[int, str, str], ...]  # (record id, column, reason) of values left as they were

    @property
    def complete(self) -> bool:
        return self.remaining.not_on(self.progress.active_key_id) == 0 and not self.failures


ProgressCallback = Callable[[RotationProgress], None]


async def rotate(
    db: Database,
    keyring: Keyring,
    *,
    batch_size: int = 500,
    pause_s: float = 0.0,
    reindex: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RotationResult:
    """Re-encrypt every value not under the active key; return what was done and what is left."""
    active = keyring.active_key_id
    if active is None:
        raise CryptoError("no active key: set ENCRYPTION_ACTIVE_KEY to the key id to rotate to")
    header = _header_of(keyring)
    before = await key_usage(db)
    total = before.not_on(active)
    if reindex:
        total += int(await db.fetch_value(COUNT_PAN_ROWS) or 0)
    progress = RotationProgress(active_key_id=active, total=total)
    failures: list[tuple[int, str, str]] = []
    log.info("key_rotation_started", active_key_id=active, values=total, reindex=reindex, batch_size=batch_size)
    cursor = 0
    while True:
        ids = await _candidates(db, cursor, header, batch_size=batch_size, reindex=reindex)
        if not ids:
            break
        await _with_retries(partial(_rotate_batch, db, keyring, ids, progress, failures, reindex=reindex))
        cursor = ids[-1]
        progress.batches += 1
        if on_progress is not None:
            on_progress(progress)
        if pause_s > 0:
            await asyncio.sleep(pause_s)
    remaining = await key_usage(db)
    log.info(
        "key_rotation_finished",
        active_key_id=active,
        rotated=progress.done,
        failed=progress.failed,
        rows=progress.rows,
        remaining_on_other_keys=remaining.not_on(active),
        seconds=round(progress.elapsed_s, 3),
    )
    return RotationResult(progress=progress, remaining=remaining, failures=tuple(failures))


def _header_of(keyring: Keyring) -> bytes:
    probe = keyring.encrypt("", column="-", record_id=0)
    return probe[: 2 + probe[1]]


async def _candidates(db: Database, cursor: int, header: bytes, *, batch_size: int, reindex: bool) -> list[int]:
    """The next ids with work to do after `cursor` (a plain read: may scan far when little is left)."""
    params: list[Any]
    if reindex:
        sql, params = SELECT_PAN_ROWS, [cursor, batch_size]
    else:
        sql, params = SELECT_CANDIDATES, [cursor]
        for _ in ENCRYPTED_COLUMNS:
            params += [len(header), header]
        params.append(batch_size)
    async with db.session() as session:
        rows = await session.fetch_all(sql, params, timeout_s=max(SCAN_TIMEOUT_S, db.query_timeout_s))
    return [int(row[0]) for row in rows]


async def _with_retries(attempt: Callable[[], Awaitable[None]]) -> None:
    retrying = AsyncRetrying(
        stop=stop_after_attempt(_BATCH_ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.5),
        retry=retry_if_exception_type(DatabaseUnavailable),
        reraise=True,
    )
    async for try_ in retrying:
        with try_:
            await attempt()


async def _rotate_batch(
    db: Database,
    keyring: Keyring,
    ids: Sequence[int],
    progress: RotationProgress,
    failures: list[tuple[int, str, str]],
    *,
    reindex: bool,
) -> None:
    """One transaction: lock the rows, re-encrypt what is stale, write back, commit."""
    active = progress.active_key_id
    done = 0
    batch_failures: list[tuple[int, str, str]] = []
    async with db.transaction() as tx:
        rows = await tx.fetch_all(LOCK_ROWS.format(ids=", ".join(["%s"] * len(ids))), list(ids))
        updates: list[list[Any]] = []
        for row in rows:
            rotated = _rotate_row(keyring, row, active, reindex=reindex)
            batch_failures += rotated.failures
            done += rotated.done
            if rotated.dirty:
                updates.append(rotated.params)
        if updates:
            await _write(tx, updates)
    # Counted once committed: a batch retried after a deadlock is not counted twice.
    progress.done += done
    progress.failed += len(batch_failures)
    progress.rows += len(updates)
    for failure in batch_failures:
        if len(failures) < _MAX_FAILURES_LOGGED:
            log.warning("key_rotation_value_skipped", record_id=failure[0], column=failure[1], reason=failure[2])
        failures.append(failure)


@dataclass(slots=True)
class _RowResult:
    params: list[Any]  # UPDATE_ROW parameters: every encrypted column, the blind index, the id
    done: int = 0  # values re-encrypted (and blind indexes re-derived)
    dirty: bool = False  # something to write
    failures: list[tuple[int, str, str]] = field(default_factory=list)


def _rotate_row(keyring: Keyring, row: Row, active: str, *, reindex: bool) -> _RowResult:
    record_id = int(row[0])
    width = len(ENCRYPTED_COLUMNS)
    values: list[Any] = list(row[1 : 1 + width])
    result = _RowResult(params=[])
    bidx = row[1 + width]
    for index, column in enumerate(ENCRYPTED_COLUMNS):
        blob = values[index]
        wants_index = reindex and column == PAN_COLUMN
        if blob is None:
            continue
        try:
            stale = key_id_of(blob) != active
            if not stale and not wants_index:
                continue  # already on the active key (the syncer may have rewritten it meanwhile)
            plain = keyring.decrypt(blob, column=column, record_id=record_id)
        except CryptoError as exc:
            result.failures.append((record_id, column, str(exc)))
            continue
        if stale:
            values[index] = keyring.encrypt(plain, column=column, record_id=record_id)
            result.done += 1
            result.dirty = True
        if wants_index:
            result.done += 1
            fresh = keyring.blind_index(plain)
            if fresh != bidx:
                bidx, result.dirty = fresh, True
    result.params = [*values, bidx, record_id]
    return result


async def _write(tx: Session, updates: list[list[Any]]) -> None:
    await tx.executemany(UPDATE_ROW, updates)
