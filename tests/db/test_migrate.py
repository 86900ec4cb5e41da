"""Migrations: ordered, recorded, idempotent, safe with two migrators at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from daemon.config import Settings
from daemon.db.connect import open_database
from daemon.db.migrate import available, latest_version, lock_name, migrate, schema_status
from daemon.errors import DatabaseError
from daemon.observability.metrics import Metrics


async def test_applies_all_then_nothing(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """The first run applies every migration; the second applies none and changes nothing."""
    settings = make_settings(fresh_db())
    async with open_database(settings.db, metrics=metrics, create=False) as db:
        assert (await schema_status(db)).current == 0
        first = await migrate(db)
        assert [m.version for m in first] == [m.version for m in available()]
        assert await migrate(db) == []
        status = await schema_status(db)
        assert status.ready and status.current == latest_version()
        rows = await db.fetch_all("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [(v, c) for v, c in rows] == [(m.version, m.checksum) for m in available()]


async def test_two_concurrent_migrators(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """Two processes migrating at once: the named lock serialises them; each migration runs once."""
    settings = make_settings(fresh_db())
    async with (
        open_database(settings.db, metrics=metrics, create=False) as one,
        open_database(settings.db, metrics=Metrics(), create=False) as two,
    ):
        results = await asyncio.gather(migrate(one), migrate(two))
        applied = sorted(m.version for result in results for m in result)
        assert applied == [m.version for m in available()]
        assert await one.fetch_value("SELECT COUNT(*) FROM schema_migrations") == len(available())


async def test_edited_migration_is_refused(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """A migration whose file changed after it ran is refused, not silently skipped."""
    settings = make_settings(fresh_db())
    async with open_database(settings.db, metrics=metrics, create=False) as db:
        await migrate(db)
        await db.execute("UPDATE schema_migrations SET checksum = REPEAT('0', 64) WHERE version = 1")
        with pytest.raises(DatabaseError, match="changed after it was applied"):
            await migrate(db)


def test_migration_files_split_into_statements() -> None:
    """Comment lines are dropped and statements split at a line-ending semicolon."""
    first = available()[0]
    statements = first.statements()
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS customers")
    assert all(not s.startswith("--") for s in statements)


def test_lock_names_fit_mysql_limit() -> None:
    """Named locks are scoped per database and never exceed MySQL's 64 characters."""
    assert lock_name("db", "migrate") == "customers-mngr:migrate:db"
    assert len(lock_name("x" * 64, "migrate")) <= 64
    assert lock_name("a" * 64, "migrate") != lock_name("b" * 64, "migrate")


async def test_the_raw_hash_migration_can_run_again(
    make_settings: Callable[..., Settings], metrics: Metrics, fresh_db: Callable[[], str]
) -> None:
    """0003 adds customers.raw_hash once; its statements run again (a crash before its record) change nothing."""
    settings = make_settings(fresh_db())
    async with open_database(settings.db, metrics=metrics, create=False) as db:
        await migrate(db)
        (raw_hash,) = [m for m in available() if m.name == "customers_raw_hash"]
        async with db.session() as session:
            for statement in raw_hash.statements():
                await session.execute(statement)
        columns = await db.fetch_all(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'customers' AND COLUMN_NAME = 'raw_hash'",
            (db.name,),
        )
        assert [tuple(c) for c in columns] == [("raw_hash", "binary", 32, "YES")]
