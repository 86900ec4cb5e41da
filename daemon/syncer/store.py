"""Writing the snapshot: one fenced transaction per batch, then the soft-delete sweep.

Per batch, one SELECT reads the stored content hash and deletion mark of the
batch's ids, so an unchanged record is neither re-encrypted nor rewritten;
the rest goes in one multi-row upsert, the invalid records into the
quarantine, and `data_version` moves when `customers` changed — all in the
same transaction, which starts with the leader's fence.
"""

# The table name in the SQL below is the policy's constant, never input; values are %s parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from daemon import policy
from daemon.crypto.keyring import Keyring
from daemon.db.database import Database, Session
from daemon.provider.records import ParsedRecord, Rejected
from daemon.syncer.leader import Leadership, fence
from daemon.syncer.rows import customer_row, placeholders, quarantine_row, quarantine_sql, select_stored_sql, upsert_sql
from daemon.syncer.runs import RunCounts

__all__ = ("BUMP_DATA_VERSION", "Batch", "Store")

TABLE: Final = policy.CUSTOMERS_TABLE
BUMP_DATA_VERSION = "UPDATE data_version SET version = version + 1, changed_at = NOW(6) WHERE name = %s"
SELECT_ACTIVE_IDS = f"SELECT `id` FROM `{TABLE}` WHERE `deleted_at` IS NULL AND `id` > %s ORDER BY `id` LIMIT %s"
SOFT_DELETE_HEAD = (
    f"UPDATE `{TABLE}` SET `deleted_at` = NOW(6), `updated_at` = NOW(6) WHERE `deleted_at` IS NULL AND `id` IN "
)
COUNT_ACTIVE = f"SELECT COUNT(*) FROM `{TABLE}` WHERE `deleted_at` IS NULL"


@dataclass(slots=True)
class Batch:
    """Up to SYNC_BATCH_SIZE records: valid ones by id (the last of a duplicate wins), and rejects."""

    records: dict[int, ParsedRecord] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)

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
            rows = await self._changed_rows(tx, batch.records, counts)
            if rows:
                await tx.execute(upsert_sql(len(rows)), _flat(rows))
                await tx.execute(BUMP_DATA_VERSION, (TABLE,))
            if batch.rejected:
                quarantined = [quarantine_row(run_id, rejected) for rejected in batch.rejected]
                await tx.execute(quarantine_sql(len(quarantined)), _flat(quarantined))
        return counts

    async def _changed_rows(
        self, tx: Session, records: Mapping[int, ParsedRecord], counts: RunCounts
    ) -> list[tuple[object, ...]]:
        """Classify each record against what is stored; encrypt only those to write."""
        if not records:
            return []
        ids = list(records)
        stored = {int(row[0]): (bytes(row[1]), row[2]) for row in await tx.fetch_all(select_stored_sql(len(ids)), ids)}
        rows: list[tuple[object, ...]] = []
        # In id order: row locks are then taken in the same order as `keys rotate` takes them
        # (ORDER BY id ... FOR UPDATE), so the two cannot deadlock each other.
        for record in sorted(records.values(), key=_by_id):
            content_hash = self._keyring.content_hash(record.canonical())
            prior = stored.get(record.id)
            if prior is None:
                counts.inserted += 1
            elif prior[1] is not None:
                counts.restored += 1
            elif prior[0] != content_hash:
                counts.updated += 1
            else:
                counts.unchanged += 1
                continue
            rows.append(customer_row(record, content_hash, self._keyring))
        return rows

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


def _by_id(record: ParsedRecord) -> int:
    return record.id


def _flat(rows: Sequence[tuple[object, ...]]) -> list[object]:
    return [value for row in rows for value in row]
