"""Opening the pool: database creation, the built-in readiness retry, orderly close.

This replaces the predecessor's `wait-for-db-ready.sh` netcat loop: the pool
is opened with exponential backoff and jitter, each failed attempt logged
with its reason, until `DB_CONNECT_TIMEOUT_S` has passed; then
`DatabaseUnavailable` (exit 3). Errors that waiting cannot fix (access
denied) fail at once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncmy
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from daemon.config.database import DbSettings
from daemon.db.database import Database
from daemon.db.errors import to_daemon_error
from daemon.errors import DaemonError, DatabaseUnavailable
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics

__all__ = ("connect_args", "ensure_database", "open_database", "wait_for")

T = TypeVar("T")
log = get_logger("customers_mngr.db")

_POOL_CLOSE_TIMEOUT_S = 5.0
# Recycle idle connections before MySQL's or a proxy's idle timeout silently kills them.
_POOL_RECYCLE_S = 600


def connect_args(settings: DbSettings, *, with_db: bool = True, timeout_s: float | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password,
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": max(1, int(timeout_s if timeout_s is not None else min(settings.connect_timeout_s, 10))),
    }
    if with_db:
        args["db"] = settings.name
    if settings.tls != "disabled":
        args["ssl"] = tls_context(settings)
    return args


def tls_context(settings: DbSettings) -> ssl.SSLContext:
    """TLS to the DB. `verify_identity` checks the chain (DB_TLS_CA or the system CAs) and the host name.

    A server without TLS fails the handshake: the connection is never silently downgraded.
    """
    context = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.tls == "required":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def wait_for(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    settings: DbSettings,
) -> T:
    """Run `attempt` until it succeeds, retrying `DatabaseUnavailable` until the deadline."""
    deadline = time.monotonic() + settings.connect_timeout_s
    last: list[str] = []

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = str(exc) if exc else "unknown"
        last[:] = [reason]
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("db_not_ready", doing=what, attempt=state.attempt_number, reason=reason, retry_in_s=round(wait, 2))

    async def bounded() -> T:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            async with asyncio.timeout(min(remaining, settings.connect_timeout_s)):
                return await attempt()
        except DaemonError:
            raise
        except (Exception, TimeoutError) as exc:
            raise to_daemon_error(exc, doing=what) from None

    retrying = AsyncRetrying(
        stop=stop_after_delay(settings.connect_timeout_s),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.5),
        retry=retry_if_exception_type(DatabaseUnavailable),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return await retrying(bounded)
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(
            f"database at {settings.host}:{settings.port} not ready after {settings.connect_timeout_s:g}s: {exc}"
        ) from None


async def ensure_database(settings: DbSettings) -> None:
    """Create the configured database if it is missing (needs the CREATE right)."""

    async def create() -> None:
        conn = await asyncmy.connect(**connect_args(settings, with_db=False))
        try:
            async with conn.cursor() as cur:
                # The name is validated as a plain identifier by the config; DDL cannot take parameters.
                await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{settings.name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()

    await wait_for("create database", create, settings=settings)


@asynccontextmanager
async def open_database(
    settings: DbSettings,
    *,
    metrics: Metrics,
    create: bool,
    pool_min: int | None = None,
    pool_max: int | None = None,
) -> AsyncIterator[Database]:
    """The shared pool as an async context manager, opened with the readiness retry."""
    if create:
        await ensure_database(settings)
    minsize = settings.pool_min if pool_min is None else pool_min
    maxsize = settings.pool_max if pool_max is None else pool_max

    async def make_pool() -> Any:
        pool = await asyncmy.create_pool(
            minsize=minsize,
            maxsize=maxsize,
            pool_recycle=_POOL_RECYCLE_S,
            **connect_args(settings),
        )
        if minsize == 0:  # prove the DB answers even when the pool keeps nothing open
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT 1")
        return pool

    pool = await wait_for("open pool", make_pool, settings=settings)
    log.info("db_pool_opened", host=settings.host, port=settings.port, database=settings.name, pool_max=maxsize)
    try:
        yield Database(pool, name=settings.name, query_timeout_s=settings.query_timeout_s, metrics=metrics)
    finally:
        pool.close()
        try:
            async with asyncio.timeout(_POOL_CLOSE_TIMEOUT_S):
                await pool.wait_closed()
        except TimeoutError:
            pool.terminate()  # a connection is still checked out: cut it rather than hang the exit
        log.info("db_pool_closed")
