"""Shared fixtures: the real MySQL server, one database per test session, settings, metrics.

Every test session creates its own database (dropped at the end), and tests
that need an empty one get their own from `fresh_db`. Nothing mocks the DB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from daemon.config import Settings, load_settings
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics
from tests.support.mysql import MysqlServer, server_from_env


@pytest.fixture(scope="session")
def mysql() -> MysqlServer:
    return server_from_env()


@pytest.fixture(scope="session")
def session_db(mysql: MysqlServer) -> Iterator[str]:
    """This test session's own database, migrated by the first test that opens it."""
    name = mysql.new_name()
    mysql.create(name)
    yield name
    mysql.drop(name)


@pytest.fixture(scope="session")
def fresh_db(mysql: MysqlServer) -> Iterator[Callable[[], str]]:
    """A factory of empty databases, all dropped when the session ends."""
    made: list[str] = []

    def make() -> str:
        name = mysql.new_name("cmtf")
        mysql.create(name)
        made.append(name)
        return name

    yield make
    for name in made:
        mysql.drop(name)


def base_env(mysql: MysqlServer, database: str, *, port: int | None = None) -> dict[str, str]:
    """A development environment pointing at `database` (through `port`, e.g. a proxy)."""
    return {
        "APP_ENV": "development",
        "DATABASE_URL": mysql.url(database, port=port),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "DB_CONNECT_TIMEOUT_S": "20",
        "API_PORT": "0",
        "METRICS_PORT": "0",
    }


@pytest.fixture
def make_settings(
    mysql: MysqlServer, session_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    def make(database: str | None = None, *, mode: str | None = None, port: int | None = None, **env: str) -> Settings:
        values = base_env(mysql, database or session_db, port=port)
        values["DEV_KEY_FILE"] = str(tmp_path_factory.mktemp("keys") / "dev-keys.json")
        values.update(env)
        return load_settings(values, mode=mode)

    return make


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


@pytest.fixture
async def db(make_settings: Callable[..., Settings], metrics: Metrics) -> AsyncIterator[Database]:
    """A pool on the session database, migrated."""
    settings = make_settings()
    async with open_database(settings.db, metrics=metrics, create=True) as database:
        await migrate(database)
        yield database
