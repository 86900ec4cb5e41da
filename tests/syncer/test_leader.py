"""The single writer: one lock holder per database, epochs, fencing of a writer that lost the lock."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from daemon.errors import DatabaseUnavailable
from daemon.observability.metrics import Metrics
from daemon.syncer.leader import (
    KEEPALIVE_S,
    LEADER_ROW,
    LOCK_SESSION_IDLE_TIMEOUT_S,
    Fenced,
    Leadership,
    LeadershipLost,
    fence,
)
from tests.support.mysql import MysqlServer
from tests.support.tcp_proxy import TcpProxy
from tests.syncer.conftest import SyncDb
from tests.syncer.support import kill_connection


def _leadership(sdb: SyncDb, metrics: Metrics | None = None) -> Leadership:
    return Leadership(db_settings=sdb.settings.db, metrics=metrics or Metrics(CollectorRegistry()))


async def _epoch(sdb: SyncDb) -> int:
    return int(await sdb.db.fetch_value("SELECT epoch FROM sync_leader WHERE name = %s", (LEADER_ROW,)))


async def test_one_leader_at_a_time_and_epochs_grow(sdb: SyncDb, metrics: Metrics) -> None:
    """The first process leads (epoch 1), a second is refused, and takes over with epoch 2 once released."""
    one, two = _leadership(sdb, metrics), _leadership(sdb)
    try:
        assert await one.acquire() == 1
        assert one.held and metrics.sync_leader._value.get() == 1
        assert await one.acquire() == 1, "a leader keeps its epoch while it holds the lock"
        assert await two.acquire() is None
        assert not two.held
        await one.release()
        assert metrics.sync_leader._value.get() == 0
        assert metrics.sync_leader_changes._value.get() == 2  # taken, then given up
        assert await two.acquire() == 2
        assert await _epoch(sdb) == 2
        holder = await sdb.db.fetch_value("SELECT holder FROM sync_leader WHERE name = %s", (LEADER_ROW,))
        assert holder.endswith(f":{two.connection_id}")
    finally:
        await one.release()
        await two.release()


async def test_killed_lock_connection_means_leadership_lost(sdb: SyncDb, mysql: MysqlServer) -> None:
    """KILL of the lock connection: verify() raises LeadershipLost and the next acquire takes a new epoch."""
    one = _leadership(sdb)
    try:
        assert await one.acquire() == 1
        await kill_connection(mysql, one.connection_id)
        with pytest.raises(LeadershipLost):
            await one.verify()
        assert not one.held
        assert await one.acquire() == 2, "reconnects and takes leadership again"
    finally:
        await one.release()


async def test_stale_epoch_is_fenced_and_rolled_back(sdb: SyncDb, mysql: MysqlServer) -> None:
    """A writer whose lock connection died, after another took over, writes nothing: its batch rolls back."""
    old, new = _leadership(sdb), _leadership(sdb)
    try:
        old_epoch = await old.acquire()
        assert old_epoch == 1
        await kill_connection(mysql, old.connection_id)
        assert await new.acquire() == 2
        with pytest.raises(Fenced):
            async with sdb.db.transaction() as tx:
                await tx.execute("UPDATE data_version SET version = version + 100 WHERE name = 'customers'")
                await fence(tx, old_epoch)
        assert await sdb.db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'") == 0
        async with sdb.db.transaction() as tx:
            await fence(tx, 2)  # the current leader passes
    finally:
        await old.release()
        await new.release()


async def test_new_leader_waits_for_the_batch_in_flight(sdb: SyncDb, mysql: MysqlServer) -> None:
    """Taking over blocks until the old leader's open batch commits; the old leader's next batch is fenced."""
    old, new = _leadership(sdb), _leadership(sdb)
    try:
        assert await old.acquire() == 1
        takeover: asyncio.Task[int | None] | None = None
        async with sdb.db.transaction() as tx:
            await fence(tx, 1)
            await kill_connection(mysql, old.connection_id)
            takeover = asyncio.create_task(new.acquire())
            await asyncio.sleep(0.5)
            assert not takeover.done(), "the epoch bump must wait for the batch holding the leader row"
            await tx.execute("UPDATE data_version SET version = version + 1 WHERE name = 'customers'")
        assert await asyncio.wait_for(takeover, 10) == 2
        with pytest.raises(Fenced):
            async with sdb.db.transaction() as tx:
                await fence(tx, 1)
        assert await sdb.db.fetch_value("SELECT version FROM data_version WHERE name = 'customers'") == 1
    finally:
        await old.release()
        await new.release()


async def test_unreachable_db_raises_unavailable_then_recovers(sdb: SyncDb, mysql: MysqlServer) -> None:
    """With the DB cut (proxy), acquire raises DatabaseUnavailable; once back, it leads again."""
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    settings = dataclasses.replace(sdb.settings.db, port=proxy.port, query_timeout_s=2.0)
    one = Leadership(db_settings=settings, metrics=Metrics(CollectorRegistry()))
    try:
        assert await one.acquire() == 1
        await proxy.stop()
        with pytest.raises(LeadershipLost):
            await one.verify()
        with pytest.raises(DatabaseUnavailable):
            await one.acquire()
        await proxy.start()
        assert await one.acquire() == 2
    finally:
        await one.release()
        await proxy.stop()


async def test_release_frees_the_lock_for_others(sdb: SyncDb) -> None:
    """release() gives the lock back at once (no wait for the connection to time out)."""
    one, two = _leadership(sdb), _leadership(sdb)
    try:
        await one.acquire()
        await one.release()
        await one.release()  # idempotent
        assert await two.acquire() == 2
    finally:
        await two.release()


async def test_our_own_stale_session_is_killed_to_take_the_lock_back(sdb: SyncDb) -> None:
    """Reconnecting while our previous lock session lingers on the server: it is killed and the lock retaken."""
    lingering, back = _leadership(sdb), _leadership(sdb)
    try:
        assert await lingering.acquire() == 1
        back._previous_id = lingering.connection_id  # as if `lingering` were our own cut-off session
        assert await back.acquire() == 2
        with pytest.raises(LeadershipLost):
            await lingering.verify()
    finally:
        await lingering.release()
        await back.release()


async def test_a_foreign_lock_holder_is_never_killed(sdb: SyncDb) -> None:
    """Another process's lock session is left alone: we just do not lead."""
    other, we = _leadership(sdb), _leadership(sdb)
    try:
        assert await other.acquire() == 1
        we._previous_id = 1  # some earlier session of ours, not the holder
        assert await we.acquire() is None
        await other.verify()
    finally:
        await other.release()
        await we.release()


async def test_lock_session_has_a_short_idle_timeout(sdb: SyncDb) -> None:
    """The server drops a silent lock session after LOCK_SESSION_IDLE_TIMEOUT_S (a zombie cannot hold the lock long)."""
    one = _leadership(sdb)
    try:
        await one.acquire()
        assert one._session is not None
        assert await one._session.fetch_value("SELECT @@SESSION.wait_timeout") == LOCK_SESSION_IDLE_TIMEOUT_S
        assert KEEPALIVE_S * 2 < LOCK_SESSION_IDLE_TIMEOUT_S
    finally:
        await one.release()
