"""The shared pool, wrapped: explicit timeouts, error mapping, broken connections discarded.

`Database` is the only way the actors reach MySQL. A connection that saw any
error or a cancellation is closed instead of returned to the pool (its state
is unknown: a half-read result, an open transaction), so a dead connection is
never handed to a caller twice; the pool opens a fresh one on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from daemon.db.errors import classify, to_daemon_error
from daemon.errors import DaemonError, DatabaseUnavailable
from daemon.observability.metrics import Metrics

__all__ = ("Database", "Row", "Session")

Row = tuple[Any, ...]


class Session:
    """One checked-out connection; every call has the configured timeout."""

    __slots__ = ("_conn", "_metrics", "_timeout")

    def __init__(self, conn: Any, *, timeout_s: float, metrics: Metrics) -> None:
        self._conn = conn
        self._timeout = timeout_s
        self._metrics = metrics

    @property
    def raw(self) -> Any:
        """The driver connection, for the rare caller that needs it (named locks)."""
        return self._conn

    async def execute(self, sql: str, params: Sequence[Any] | None = None, *, timeout_s: float | None = None) -> int:
        """Run one statement; return the affected row count."""
        async with self._guard("execute", timeout_s), self._conn.cursor() as cur:
            return int(await cur.execute(sql, params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]], *, timeout_s: float | None = None) -> int:
        async with self._guard("executemany", timeout_s), self._conn.cursor() as cur:
            return int(await cur.executemany(sql, rows))

    @property
    def timeout_s(self) -> float:
        return self._timeout

    async def fetch_all(
        self, sql: str, params: Sequence[Any] | None = None, *, timeout_s: float | None = None
    ) -> list[Row]:
        async with self._guard("query", timeout_s), self._conn.cursor() as cur:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

    async def fetch_one(
        self, sql: str, params: Sequence[Any] | None = None, *, timeout_s: float | None = None
    ) -> Row | None:
        async with self._guard("query", timeout_s), self._conn.cursor() as cur:
            await cur.execute(sql, params)
            row = await cur.fetchone()
            return None if row is None else tuple(row)

    async def fetch_value(
        self, sql: str, params: Sequence[Any] | None = None, *, timeout_s: float | None = None
    ) -> Any:
        row = await self.fetch_one(sql, params, timeout_s=timeout_s)
        return None if row is None else row[0]

    def last_insert_id(self) -> int:
        return int(self._conn.insert_id())

    @asynccontextmanager
    async def _guard(self, doing: str, timeout_s: float | None) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._timeout if timeout_s is None else timeout_s):
                yield
        except DaemonError:
            raise
        except (Exception, TimeoutError) as exc:
            self._metrics.db_errors.labels(kind=classify(exc)).inc()
            raise to_daemon_error(exc, doing=f"database {doing}") from None


class Database:
    """The process's one pool, shared by every actor."""

    def __init__(self, pool: Any, *, name: str, query_timeout_s: float, metrics: Metrics) -> None:
        self._pool = pool
        self.name = name
        self.query_timeout_s = query_timeout_s
        self._metrics = metrics
        gauge = metrics.db_pool_size
        gauge.labels(state="total").set_function(lambda: pool.size)
        gauge.labels(state="free").set_function(lambda: pool.freesize)
        gauge.labels(state="in_use").set_function(lambda: pool.size - pool.freesize)
        gauge.labels(state="max").set_function(lambda: pool.maxsize)

    @property
    def pool(self) -> Any:
        return self._pool

    @asynccontextmanager
    async def session(self, *, acquire_timeout_s: float | None = None) -> AsyncIterator[Session]:
        """Check a connection out (autocommit); discard it if anything goes wrong."""
        conn = await self._acquire(acquire_timeout_s)
        try:
            yield Session(conn, timeout_s=self.query_timeout_s, metrics=self._metrics)
        except BaseException:
            conn.close()  # unknown state: the server rolls back whatever was open
            raise
        finally:
            self._pool.release(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error or cancel."""
        async with self.session() as session:
            async with session._guard("begin", None):
                await session.raw.begin()
            yield session
            async with session._guard("commit", None):
                await session.raw.commit()

    async def fetch_all(self, sql: str, params: Sequence[Any] | None = None) -> list[Row]:
        async with self.session() as session:
            return await session.fetch_all(sql, params)

    async def fetch_one(self, sql: str, params: Sequence[Any] | None = None) -> Row | None:
        async with self.session() as session:
            return await session.fetch_one(sql, params)

    async def fetch_value(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        async with self.session() as session:
            return await session.fetch_value(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        async with self.session() as session:
            return await session.execute(sql, params)

    async def _acquire(self, timeout_s: float | None) -> Any:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.query_timeout_s if timeout_s is None else timeout_s):
                conn = await self._pool.acquire()
        except (Exception, TimeoutError) as exc:
            self._metrics.db_errors.labels(kind=classify(exc)).inc()
            if isinstance(exc, RuntimeError):  # the pool is closing: the process is stopping
                raise DatabaseUnavailable("database pool is closed") from None
            raise to_daemon_error(exc, doing="database connect") from None
        finally:
            self._metrics.db_acquire_wait.observe(time.perf_counter() - started)
        return conn
