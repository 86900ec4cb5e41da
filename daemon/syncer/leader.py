"""The single writer: a MySQL named lock on a dedicated connection, plus a fencing epoch.

Only one syncer in the deployment writes. Leadership is the server-wide named
lock `lock_name(db, "syncer")`, taken with `GET_LOCK(name, 0)` (never waiting:
a replica that does not get it skips its run). The lock lives exactly as long
as the connection that took it, so:

- it is held on a **dedicated connection**, opened outside the shared pool.
  A pooled connection goes back to the pool on release, and a lock still on it
  would silently make whichever API request borrows it next "the leader"; the
  pool also recycles and discards connections on its own schedule, which would
  drop the lock behind our back. A connection of our own is closed, never
  returned, so losing it can only mean losing the lock.
- any error on that connection means leadership is lost (the server released
  the lock when the connection went); the next attempt reconnects. Aurora's
  read-only answer after a failover (1290) is one of those errors.
- a connection cut by the network can outlive us on the server, still holding
  the lock. So the lock session gets a short `wait_timeout` (the server drops
  it after LOCK_SESSION_IDLE_TIMEOUT_S of silence; the actor pings it every
  KEEPALIVE_S between runs), and when we reconnect and find the lock held by
  our own previous session, we KILL that session (a user may kill its own) and
  take the lock back instead of waiting for the server to notice.

The lock alone cannot stop a writer that lost it while it was mid-run (a
stalled process, a dropped connection it has not noticed yet). So taking the
lock also bumps an **epoch** in `sync_leader`, and every batch transaction
starts with `fence()`: an UPDATE of that row matching our epoch. It takes the
row lock for the rest of the transaction, so a new leader's bump waits for the
batch in flight to commit, and every later batch of the old writer matches no
row and rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

import asyncmy

from daemon.config.database import DbSettings
from daemon.db.connect import connect_args
from daemon.db.database import Session
from daemon.db.errors import to_daemon_error
from daemon.db.migrate import lock_name
from daemon.errors import DaemonError
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics

__all__ = ("KEEPALIVE_S", "LEADER_ROW", "Fenced", "Leadership", "LeadershipLost", "fence")

log = get_logger("customers_mngr.syncer")

LEADER_ROW = "customers"  # the sync_leader row of the writer of the customers table
LOCK_PURPOSE = "syncer"
LOCK_SESSION_IDLE_TIMEOUT_S = 90  # the server drops a silent lock session after this
KEEPALIVE_S = 30.0  # the actor pings the lock session at least this often between runs
_RELEASE_TIMEOUT_S = 2.0
_ZOMBIE_WAIT_S = 5  # GET_LOCK wait after killing our own stale session (KILL returns before it ends)

GET_LOCK_NOWAIT = "SELECT GET_LOCK(%s, 0)"
GET_LOCK_WAIT = "SELECT GET_LOCK(%s, %s)"
LOCK_HOLDER = "SELECT IS_USED_LOCK(%s)"
KILL_SESSION = "KILL %s"
SET_IDLE_TIMEOUT = "SET SESSION wait_timeout = %s"
LOCK_IS_MINE = "SELECT IS_USED_LOCK(%s) = CONNECTION_ID()"
RELEASE_LOCK = "SELECT RELEASE_LOCK(%s)"
SELECT_CONNECTION_ID = "SELECT CONNECTION_ID()"
TAKE_EPOCH = (
    "INSERT INTO sync_leader (name, epoch, holder, acquired_at, heartbeat_at) VALUES (%s, 1, %s, NOW(6), NOW(6)) "
    "ON DUPLICATE KEY UPDATE epoch = epoch + 1, holder = VALUES(holder), "
    "acquired_at = VALUES(acquired_at), heartbeat_at = VALUES(heartbeat_at)"
)
SELECT_EPOCH = "SELECT epoch FROM sync_leader WHERE name = %s"
# GREATEST(..., +1µs): the row always changes, so the affected count is 1 exactly when
# the epoch matches (the driver reports changed rows, not matched ones).
FENCE = (
    "UPDATE sync_leader SET heartbeat_at = GREATEST(NOW(6), heartbeat_at + INTERVAL 1 MICROSECOND) "
    "WHERE name = %s AND epoch = %s"
)


class LeadershipLost(DaemonError):
    """This process no longer holds the writer lock; it must not write."""


class Fenced(LeadershipLost):
    """A newer leader took over (the epoch moved on): the batch was rolled back."""


async def fence(session: Session, epoch: int) -> None:
    """First statement of every batch transaction: refuse to write under a stale epoch."""
    if await session.execute(FENCE, (LEADER_ROW, epoch)) != 1:
        raise Fenced(f"fenced: leadership epoch {epoch} is no longer current; batch rolled back")


class Leadership:
    """The writer lock of one process: acquire (or learn another leads), verify, release."""

    def __init__(self, *, db_settings: DbSettings, metrics: Metrics, holder: str | None = None) -> None:
        self._settings = db_settings
        self._metrics = metrics
        self.lock_name = lock_name(db_settings.name, LOCK_PURPOSE)
        self.holder = (holder or f"{socket.gethostname()}:{os.getpid()}")[:200]
        self._session: Session | None = None
        self.epoch: int | None = None
        self.connection_id: int | None = None
        self._previous_id: int | None = None  # our last lock session, possibly still alive on the server

    @property
    def held(self) -> bool:
        return self._session is not None

    async def acquire(self) -> int | None:
        """The epoch if this process leads (keeping or taking the lock), None if another does.

        Raises DatabaseUnavailable when the DB cannot be asked.
        """
        if self._session is not None:
            try:
                await self.verify()
                return self.epoch
            except LeadershipLost as exc:
                log.warning("sync_leadership_lost", reason=str(exc))
        session = await self._connect()
        try:
            if not await self._take_lock(session):
                self._close(session)
                return None
            self._session = session
            self.connection_id = int(await session.fetch_value(SELECT_CONNECTION_ID))
            await session.execute(TAKE_EPOCH, (LEADER_ROW, f"{self.holder}:{self.connection_id}"))
            self.epoch = int(await session.fetch_value(SELECT_EPOCH, (LEADER_ROW,)))
        except DaemonError:
            self._lose()
            raise
        self._metrics.sync_leader.set(1)
        self._metrics.sync_leader_changes.inc()
        log.info("sync_leadership_taken", epoch=self.epoch, holder=self.holder)
        return self.epoch

    async def _take_lock(self, session: Session) -> bool:
        """GET_LOCK without waiting; if our own previous session still holds it, kill that one first."""
        if await session.fetch_value(GET_LOCK_NOWAIT, (self.lock_name,)) == 1:
            return True
        stale = self._previous_id
        if stale is None or await session.fetch_value(LOCK_HOLDER, (self.lock_name,)) != stale:
            return False
        log.warning("sync_stale_lock_session_killed", connection_id=stale)
        await session.execute(KILL_SESSION, (stale,))
        self._previous_id = None
        wait = _ZOMBIE_WAIT_S
        return bool(await session.fetch_value(GET_LOCK_WAIT, (self.lock_name, wait), timeout_s=wait + 5) == 1)

    async def verify(self) -> None:
        """Raise LeadershipLost unless the lock is still on our connection (any error counts as lost)."""
        session = self._session
        if session is None:
            raise LeadershipLost("not the leader")
        try:
            mine = await session.fetch_value(LOCK_IS_MINE, (self.lock_name,))
        except DaemonError as exc:
            self._lose()
            raise LeadershipLost(f"writer lock connection failed: {exc}") from None
        if mine != 1:
            self._lose()
            raise LeadershipLost("the writer lock is no longer held by this process")

    async def release(self) -> None:
        """Give the lock back (bounded; closing the connection releases it anyway). Never raises."""
        session = self._session
        if session is None:
            return
        with contextlib.suppress(DaemonError, TimeoutError):
            async with asyncio.timeout(_RELEASE_TIMEOUT_S):
                await session.fetch_value(RELEASE_LOCK, (self.lock_name,))
        self._lose()
        self._previous_id = None  # closed on purpose: nothing of ours is left holding the lock
        log.info("sync_leadership_released")

    async def _connect(self) -> Session:
        timeout_s = self._settings.query_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                conn = await asyncmy.connect(**connect_args(self._settings, timeout_s=timeout_s))
        except DaemonError:
            raise
        except (Exception, TimeoutError) as exc:
            self._metrics.db_errors.labels(kind="unavailable").inc()
            raise to_daemon_error(exc, doing="writer lock connect") from None
        session = Session(conn, timeout_s=timeout_s, metrics=self._metrics)
        try:
            await session.execute(SET_IDLE_TIMEOUT, (LOCK_SESSION_IDLE_TIMEOUT_S,))
        except DaemonError:
            self._close(session)
            raise
        return session

    def _lose(self) -> None:
        session, self._session = self._session, None
        was_leader = session is not None and self.epoch is not None
        if self.connection_id is not None:
            self._previous_id = self.connection_id
        if session is not None:
            self._close(session)
        self.epoch = None
        self.connection_id = None
        self._metrics.sync_leader.set(0)
        if was_leader:
            self._metrics.sync_leader_changes.inc()

    @staticmethod
    def _close(session: Session) -> None:
        with contextlib.suppress(Exception):
            session.raw.close()
