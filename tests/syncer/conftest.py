"""Syncer fixtures: an empty, migrated database per test (the syncer owns whole tables)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from daemon.config import Settings
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics


@dataclass(frozen=True)
class SyncDb:
    settings: Settings
    db: Database
    name: str


@pytest.fixture
async def sdb(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> AsyncIterator[SyncDb]:
    """A pool on a fresh, migrated database of this test's own."""
    name = fresh_db()
    settings = make_settings(name, SYNC_BATCH_SIZE="50")
    async with open_database(settings.db, metrics=metrics, create=False, pool_max=4) as db:
        await migrate(db)
        yield SyncDb(settings=settings, db=db, name=name)
