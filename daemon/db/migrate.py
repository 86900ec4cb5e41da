"""Versioned schema migrations: SQL files in `migrations/`, applied in order, once.

Each applied file is recorded in `schema_migrations` with its checksum, so a
file edited after it ran is refused instead of silently diverging. Two
processes starting at once serialise on a MySQL named lock, so neither runs
half of a migration the other has started. MySQL commits DDL implicitly,
so files are written to be re-runnable (`IF NOT EXISTS`) in case a process
dies between a statement and its record.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from daemon.db.database import Database, Session
from daemon.errors import DatabaseError, DatabaseUnavailable
from daemon.observability.logs import get_logger

__all__ = ("Migration", "SchemaStatus", "available", "latest_version", "lock_name", "migrate", "schema_status")

log = get_logger("customers_mngr.migrate")

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_WAIT_S = 60

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INT UNSIGNED NOT NULL,
    name VARCHAR(128) NOT NULL,
    checksum CHAR(64) NOT NULL,
    applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
SELECT_APPLIED = "SELECT version, checksum FROM schema_migrations ORDER BY version"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
SELECT_CURRENT_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
GET_LOCK = "SELECT GET_LOCK(%s, %s)"
RELEASE_LOCK = "SELECT RELEASE_LOCK(%s)"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """Statements of the file: `--` comment lines dropped, split at `;` ending a line."""
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: int
    needed: int

    @property
    def ready(self) -> bool:
        return self.current >= self.needed


def available() -> list[Migration]:
    """The migrations shipped inside the package, in version order."""
    folder = resources.files("daemon.db").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return found


def latest_version() -> int:
    return max((m.version for m in available()), default=0)


def lock_name(database: str, purpose: str) -> str:
    """Named locks are server-wide: scope them to the database, within MySQL's 64 characters."""
    name = f"customers-mngr:{purpose}:{database}"
    return name if len(name) <= 64 else f"customers-mngr:{purpose}:{hashlib.sha256(database.encode()).hexdigest()[:32]}"


async def migrate(db: Database) -> list[Migration]:
    """Apply every pending migration; return those applied by this call."""
    name = lock_name(db.name, "migrate")
    async with db.session() as session:
        got = await session.fetch_value(GET_LOCK, (name, _LOCK_WAIT_S), timeout_s=_LOCK_WAIT_S + 5)
        if got != 1:
            raise DatabaseUnavailable(
                f"migration lock not obtained within {_LOCK_WAIT_S}s (another migrator is stuck?)"
            )
        try:
            return await _apply_pending(session)
        finally:
            await session.fetch_value(RELEASE_LOCK, (name,))


async def schema_status(db: Database) -> SchemaStatus:
    """The schema's version against the one this build needs (for /ready in api mode)."""
    try:
        current = await db.fetch_value(SELECT_CURRENT_VERSION)
    except DatabaseError:  # no schema_migrations table yet: nothing applied
        current = 0
    return SchemaStatus(current=int(current or 0), needed=latest_version())


async def _apply_pending(session: Session) -> list[Migration]:
    await session.execute(CREATE_MIGRATIONS_TABLE)
    applied = {int(v): str(c) for v, c in await session.fetch_all(SELECT_APPLIED)}
    done: list[Migration] = []
    for migration in available():
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise DatabaseError(
                    f"migration {migration.version:04d}_{migration.name} was changed after it was applied; "
                    "add a new migration instead"
                )
            continue
        log.info("migration_applying", version=migration.version, migration=migration.name)
        for statement in migration.statements():
            await session.execute(statement, timeout_s=max(session.timeout_s, 300))
        await session.execute(INSERT_APPLIED, (migration.version, migration.name, migration.checksum))
        done.append(migration)
    log.info("migrations_done", applied=len(done), version=max(applied | {m.version: "" for m in done}, default=0))
    return done
