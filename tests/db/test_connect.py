"""The pool: readiness retry, database creation, clear failures, recovery after a drop."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable

import pytest

from daemon.config import Settings
from daemon.config.process import LogSettings
from daemon.db.connect import open_database
from daemon.errors import DatabaseError, DatabaseUnavailable
from daemon.observability.logs import configure_logging
from daemon.observability.metrics import Metrics
from tests.support.mysql import MysqlServer
from tests.support.tcp_proxy import TcpProxy


async def test_waits_for_the_db_then_connects(
    make_settings: Callable[..., Settings], metrics: Metrics, session_db: str, mysql: MysqlServer
) -> None:
    """With the DB unreachable at start, the pool retries (logging why) and connects once it is up."""
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    port = proxy.port
    await proxy.stop()  # the DB is "down": connections to the port are refused
    settings = make_settings(port=port, DB_CONNECT_TIMEOUT_S="20")
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=stream)

    async def bring_up() -> None:
        await asyncio.sleep(1.5)
        await proxy.start()

    started = time.monotonic()
    up = asyncio.create_task(bring_up())
    async with open_database(settings.db, metrics=metrics, create=False) as db:
        assert await db.fetch_value("SELECT 1") == 1
    await up
    await proxy.stop()
    assert time.monotonic() - started >= 1.4
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    waits = [e for e in events if e["event"] == "db_not_ready"]
    assert waits, "each failed attempt is logged"
    assert all(e["reason"] and e["level"] == "warning" for e in waits)


async def test_gives_up_after_the_connect_timeout(
    make_settings: Callable[..., Settings], metrics: Metrics, mysql: MysqlServer
) -> None:
    """An unreachable DB ends in DatabaseUnavailable (exit 3) once DB_CONNECT_TIMEOUT_S has passed."""
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    port = proxy.port
    await proxy.stop()
    settings = make_settings(port=port, DB_CONNECT_TIMEOUT_S="1.5")
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match=r"not ready after 1\.5s") as caught:
        async with open_database(settings.db, metrics=metrics, create=False):
            pass
    assert 1.4 <= time.monotonic() - started < 8
    assert caught.value.exit_code == 3


async def test_access_denied_fails_at_once(
    make_settings: Callable[..., Settings], metrics: Metrics, mysql: MysqlServer, session_db: str
) -> None:
    """Wrong credentials are not retried: waiting cannot fix them."""
    settings = make_settings(
        DATABASE_URL=f"mysql://no_such_user_x:wrong@{mysql.host}:{mysql.port}/{session_db}", DB_CONNECT_TIMEOUT_S="30"
    )
    started = time.monotonic()
    with pytest.raises(DatabaseError, match="access denied") as caught:
        async with open_database(settings.db, metrics=metrics, create=False):
            pass
    assert time.monotonic() - started < 5
    assert "wrong" not in str(caught.value)


async def test_creates_a_missing_database(
    make_settings: Callable[..., Settings], metrics: Metrics, mysql: MysqlServer
) -> None:
    """A missing database is created when the mode may write."""
    name = mysql.new_name("cmtc")
    try:
        settings = make_settings(name)
        async with open_database(settings.db, metrics=metrics, create=True) as db:
            assert await db.fetch_value("SELECT DATABASE()") == name
    finally:
        await mysql.aexecute(f"DROP DATABASE IF EXISTS `{name}`")


async def test_pool_recovers_after_every_connection_is_dropped(
    make_settings: Callable[..., Settings],
    metrics: Metrics,
    mysql: MysqlServer,
) -> None:
    """After the proxy cuts every connection, dead ones are discarded, never handed out twice."""
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    settings = make_settings(port=proxy.port, DB_POOL_MIN="3", DB_POOL_MAX="3")
    async with open_database(settings.db, metrics=metrics, create=False) as db:
        # Check out all three so the pool really holds three connections.
        async with db.session() as a, db.session() as b, db.session() as c:
            ids = {await s.fetch_value("SELECT CONNECTION_ID()") for s in (a, b, c)}
        assert len(ids) == 3
        await proxy.drop_connections()
        await asyncio.sleep(0.2)
        failures = 0
        seen_after: set[int] = set()
        for _ in range(10):
            try:
                seen_after.add(int(await db.fetch_value("SELECT CONNECTION_ID()")))
            except DatabaseUnavailable:
                failures += 1
        assert failures <= 3, "each dead connection fails at most one caller"
        assert seen_after and not (seen_after & ids), "only fresh connections serve after the drop"
        # And it keeps serving.
        assert await db.fetch_value("SELECT 1") == 1
    await proxy.stop()
