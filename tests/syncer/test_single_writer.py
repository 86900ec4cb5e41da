"""One writer only: a writer that lost its lock or its epoch stops writing at the next batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from daemon.syncer.leader import LEADER_ROW
from tests.support.mysql import MysqlServer
from tests.syncer.conftest import SyncDb
from tests.syncer.support import FakePage, Harness, kill_connection, raw_record


async def _customers(sdb: SyncDb) -> int:
    return int(await sdb.db.fetch_value("SELECT COUNT(*) FROM customers"))


async def _committed(sdb: SyncDb, n: int, within_s: float = 15.0) -> None:
    """Wait until `n` customers rows are committed (a batch's write runs beside the page fetch)."""
    deadline = time.monotonic() + within_s
    while await _customers(sdb) < n:
        assert time.monotonic() < deadline, f"{n} rows not committed in time"
        await asyncio.sleep(0.02)


async def test_writer_whose_lock_connection_is_killed_writes_nothing_more(sdb: SyncDb, mysql: MysqlServer) -> None:
    """KILL of the lock connection mid-run: the next batch is refused, the run fails, no later row lands."""
    writer, other = Harness(sdb, batch_size=20), Harness(sdb, batch_size=20)
    try:

        async def pages() -> AsyncIterator[FakePage]:
            yield FakePage(1, [raw_record(i) for i in range(1, 21)])  # one full batch: written
            await _committed(sdb, 20)  # its write overlaps the fetch of the next page
            await kill_connection(mysql, writer.leadership.connection_id)
            assert await other.leadership.acquire() == 2  # another replica takes over
            yield FakePage(2, [raw_record(i) for i in range(21, 41)])

        writer.source = pages
        epoch = await writer.leadership.acquire()
        assert epoch == 1
        summary = await writer.runner.run(epoch)
        assert summary.status == "failed" and summary.error is not None
        assert "lock" in summary.error
        assert summary.counts.inserted == 20
        assert await _customers(sdb) == 20
        assert not writer.leadership.held
    finally:
        await writer.close()
        await other.close()


async def test_writer_with_a_stale_epoch_is_fenced(sdb: SyncDb) -> None:
    """Still holding its lock but with an epoch moved on (split brain): the batch rolls back, the run fails."""
    writer = Harness(sdb, batch_size=20)
    try:

        async def pages() -> AsyncIterator[FakePage]:
            yield FakePage(1, [raw_record(i) for i in range(1, 21)])
            await _committed(sdb, 20)  # its write overlaps the fetch of the next page
            await sdb.db.execute("UPDATE sync_leader SET epoch = epoch + 1 WHERE name = %s", (LEADER_ROW,))
            yield FakePage(2, [raw_record(i) for i in range(21, 41)])

        writer.source = pages
        epoch = await writer.leadership.acquire()
        assert epoch is not None
        version = await sdb.db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'")
        summary = await writer.runner.run(epoch)
        assert summary.status == "failed" and summary.error is not None and "fenced" in summary.error
        assert await _customers(sdb) == 20
        assert await sdb.db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'") == version + 1
        assert await sdb.db.fetch_value("SELECT COUNT(*) FROM sync_quarantine") == 0
    finally:
        await writer.close()
