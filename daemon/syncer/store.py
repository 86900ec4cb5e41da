"""Writing the snapshot: one fenced transaction per batch, then the soft-delete sweep.

Per batch, one SELECT reads the stored content hash, deletion mark and raw
hash of the batch's ids, so an unchanged record is neither re-encrypted nor
rewritten; the rest goes in one multi-row upsert, the invalid records into
the quarantine, and `data_version` moves when `customers` changed — all in the
same transaction, which starts with the leader's fence. A record whose content
is unchanged but whose raw hash is not the stored one (rows written before raw
hashes existed, a provider that reordered its keys) only gets its raw hash
updated, so the next sync can skip it without parsing.

`raw_hashes` (before parsing, outside any transaction) reads the raw hashes of
live rows: the runner's skip of unchanged records. It only reads.
"""

# The table name in the SQL below is the policy's constant, never input; values are %s parameters
# or literals from daemon.db.literals.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass, field
from typing import Final

from daemon import policy
from daemon.crypto.keyring import Keyring
from daemon.db.database import Database, Session
from daemon.db.literals import row_literal
from daemon.provider.records import ParsedRecord, Rejected
from daemon.syncer.leader import Leadership, fence
from daemon.syncer.rows import (
    customer_row,
    placeholders,
    quarantine_row,
    quarantine_sql,
    raw_hash_update,
    select_raw_hashes,
    select_stored,
    upsert_of_literals,
)
from daemon.syncer.runs import RunCounts

__all__ = ("BUMP_DATA_VERSION", "Batch", "Prepared", "Store", "TableState")

TABLE: Final = policy.CUSTOMERS_TABLE
BUMP_DATA_VERSION = "UPDATE data_version SET version = version + 1, changed_at = NOW(6) WHERE name = %s"
SELECT_ACTIVE_IDS = f"SELECT `id` FROM `{TABLE}` WHERE `deleted_at` IS NULL AND `id` > %s ORDER BY `id` LIMIT %s"
SOFT_DELETE_HEAD = (
    f"UPDATE `{TABLE}` SET `deleted_at` = NOW(6), `updated_at` = NOW(6) WHERE `deleted_at` IS NULL AND `id` IN "
)
COUNT_ACTIVE = f"SELECT COUNT(*) FROM `{TABLE}` WHERE `deleted_at` IS NULL"
# Whether the table has any row, and any live row with a raw hash (one round trip, at a run's start).
TABLE_STATE = (
    f"SELECT EXISTS(SELECT 1 FROM `{TABLE}`), "
    f"EXISTS(SELECT 1 FROM `{TABLE}` WHERE `raw_hash` IS NOT NULL AND `deleted_at` IS NULL)"
)


Prepared = tuple[bytes, str]  # a record's content hash and the SQL literal of its row


@dataclass(frozen=True, slots=True)
class TableState:
    """What a run needs to know of the table before it starts."""

    has_rows: bool
    has_raw_hashes: bool  # some live row has one: looking raw hashes up can skip records


@dataclass(slots=True)
class Batch:
    """Up to SYNC_BATCH_SIZE records: valid ones by id (the last of a duplicate wins), and rejects."""

    records: dict[int, ParsedRecord] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    raw_hashes: dict[int, bytes] = field(default_factory=dict)  # of records[id]'s raw record, when known
    # (content hash, row literal) of records[id], built before the write when it was likely needed
    prepared: dict[int, Prepared] = field(default_factory=dict)

    def drop(self, record_id: int) -> None:
        """Forget a valid record (a later one of the same id supersedes it)."""
        self.records.pop(record_id, None)
        self.raw_hashes.pop(record_id, None)
        self.prepared.pop(record_id, None)

    def __len__(self) -> int:
        return len(self.records) + len(self.rejected)


class Store:
    """The writes of one leader: every transaction fenced by its epoch."""

    def __init__(self, *, db: Database, keyring: Keyring, leadership: Leadership) -> None:
        self._db = db
        self._keyring = keyring
        self._leadership = leadership

    async def write(self, batch: Batch, *, run_id: int, epoch: int) -> RunCounts:
        """Store one batch in one transaction; return its outcome counts (only once committed)."""
        await self._leadership.verify()
        counts = RunCounts(rejected=len(batch.rejected))
        async with self._db.transaction() as tx:
            await fence(tx, epoch)
            rows, refresh = await self._changed_rows(tx, batch, counts)
            if rows:
                await tx.execute(upsert_of_literals(rows))
                await tx.execute(BUMP_DATA_VERSION, (TABLE,))
            if refresh:  # not served data: data_version stays
                await tx.execute(raw_hash_update(refresh))
            if batch.rejected:
                quarantined = [quarantine_row(run_id, rejected) for rejected in batch.rejected]
                await tx.execute(quarantine_sql(len(quarantined)), _flat(quarantined))
        return counts

    async def raw_hashes(self, ids: Collection[int]) -> dict[int, bytes]:
        """The stored raw hash of each live row among `ids` that has one."""
        if not ids:
            return {}
        return {int(row[0]): bytes(row[1]) for row in await self._db.fetch_all(select_raw_hashes(ids))}

    async def state(self) -> TableState:
        row = await self._db.fetch_one(TABLE_STATE)
        return TableState(has_rows=bool(row and row[0]), has_raw_hashes=bool(row and row[1]))

    def prepare(self, record: ParsedRecord, raw_hash: bytes | None) -> Prepared:
        """The content hash and row literal of a record, built ahead of its batch's transaction.

        The caller does so for records it expects to be written, so this CPU work overlaps the
        write in flight instead of running inside the next batch's transaction.
        """
        content_hash = self._keyring.content_hash(record.canonical())
        return content_hash, row_literal(customer_row(record, content_hash, self._keyring, raw_hash))

    async def _changed_rows(self, tx: Session, batch: Batch, counts: RunCounts) -> tuple[list[str], dict[int, bytes]]:
        """Classify each record against what is stored; encrypt only those to write.

        Returns the row literals to upsert and the raw hashes to refresh on rows left as they are.
        """
        records = batch.records
        if not records:
            return [], {}
        stored = {int(row[0]): row[1:] for row in await tx.fetch_all(select_stored(records))}
        raw_hashes, prepared = batch.raw_hashes, batch.prepared
        rows: list[str] = []
        refresh: dict[int, bytes] = {}
        keyring = self._keyring
        # In id order: row locks are then taken in the same order as `keys rotate` takes them
        # (ORDER BY id ... FOR UPDATE), so the two cannot deadlock each other.
        for record_id in sorted(records):
            record = records[record_id]
            ready = prepared.get(record_id)
            content_hash = keyring.content_hash(record.canonical()) if ready is None else ready[0]
            raw_hash = raw_hashes.get(record_id)
            prior = stored.get(record_id)
            if prior is None:
                counts.inserted += 1
            elif prior[1]:
                counts.restored += 1
            elif bytes(prior[0]) != content_hash:
                counts.updated += 1
            else:
                counts.unchanged += 1
                if raw_hash is not None and (prior[2] is None or bytes(prior[2]) != raw_hash):
                    refresh[record_id] = raw_hash
                continue
            if ready is None:
                ready = (content_hash, row_literal(customer_row(record, content_hash, keyring, raw_hash)))
            rows.append(ready[1])
        return rows, refresh

    async def count_active(self) -> int:
        return int(await self._db.fetch_value(COUNT_ACTIVE))

    async def sweep(self, keep: Container[int], *, epoch: int, batch_size: int) -> int:
        """Soft-delete every stored, live row whose id is not in `keep`; return how many.

        Reads the live ids in keyset order, batch by batch, so memory stays
        bounded by the batch (plus the caller's set of ids seen).
        """
        deleted = 0
        after = 0
        doomed: list[int] = []
        while True:
            ids = [int(row[0]) for row in await self._db.fetch_all(SELECT_ACTIVE_IDS, (after, batch_size))]
            if not ids:
                break
            after = ids[-1]
            doomed.extend(i for i in ids if i not in keep)
            while len(doomed) >= batch_size:
                deleted += await self._soft_delete(doomed[:batch_size], epoch)
                del doomed[:batch_size]
        if doomed:
            deleted += await self._soft_delete(doomed, epoch)
        return deleted

    async def _soft_delete(self, ids: Sequence[int], epoch: int) -> int:
        await self._leadership.verify()
        async with self._db.transaction() as tx:
            await fence(tx, epoch)
            count = await tx.execute(SOFT_DELETE_HEAD + placeholders(len(ids)), ids)
            if count:
                await tx.execute(BUMP_DATA_VERSION, (TABLE,))
        return count


def _flat(rows: Sequence[tuple[object, ...]]) -> list[object]:
    return [value for row in rows for value in row]
