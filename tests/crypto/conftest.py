"""A migrated database of its own for tests that write customers rows (counts must be exact)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from daemon.config import Settings
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics


@pytest.fixture
def own_db_name(fresh_db: Callable[[], str]) -> str:
    return fresh_db()


@pytest.fixture
async def own_db(make_settings: Callable[..., Settings], metrics: Metrics, own_db_name: str) -> AsyncIterator[Database]:
    """An empty, migrated database used by this test alone."""
    settings = make_settings(own_db_name)
    async with open_database(settings.db, metrics=metrics, create=False) as database:
        await migrate(database)
        yield database
