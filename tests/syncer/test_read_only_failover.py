"""An Aurora failover's old writer answers 1290 (read-only): runs fail cleanly, the same process recovers.

Aurora demotes the old writer to a reader during a failover; until the writer
endpoint's DNS moves, every write the syncer sends there is refused with error
1290. `read_only` on a MariaDB of the test's own (the shared server must never
be reconfigured) gives the same answer to a user without the admin privilege —
the daemon's user never has it. The actor must count those runs as failed,
discard the refused connections, keep its schedule without crashing, and write
again as soon as the server takes writes, with no restart and nothing half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from daemon.config import Settings
from daemon.config.sync import SyncSettings
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics
from daemon.syncer.actor import SyncerActor
from tests.support.private_mariadb import PrivateMariaDb, private_mariadb, require_mariadbd
from tests.syncer.support import FakePage, keyring, raw_record, until

pytestmark = pytest.mark.slow

N = 60
CHANGED = "SELECT COUNT(*) FROM customers WHERE direccion LIKE %s"
USER, PASSWORD, DATABASE = "syncer", "s3cret-test-only", "failover"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDb]:
    require_mariadbd()
    with private_mariadb(tmp_path_factory.mktemp("ro-db"), grants=True) as db:
        # What production grants the syncer's user: its schema, no admin privilege (so read_only binds it).
        db.admin(
            f"CREATE DATABASE {DATABASE}",
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'",
            f"GRANT ALL PRIVILEGES ON {DATABASE}.* TO '{USER}'@'127.0.0.1'",
        )
        yield db


def _read_only_errors(metrics: Metrics) -> float:
    return float(metrics.db_errors.labels(kind="read_only")._value.get())


def _failed(metrics: Metrics) -> float:
    return float(metrics.sync_runs.labels(status="failed")._value.get())


async def test_read_only_writer_fails_runs_then_recovers_without_restart(
    server: PrivateMariaDb, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        DATABASE_URL=f"mysql://{USER}:{PASSWORD}@127.0.0.1:{server.port}/{DATABASE}", DB_QUERY_TIMEOUT_S="5"
    )
    version = 0  # bumped while the server is read-only: the provider changed, the writes are refused

    async def pages() -> AsyncIterator[FakePage]:
        yield FakePage(1, [raw_record(i, version=version) for i in range(1, N + 1)])

    metrics = Metrics(CollectorRegistry())
    async with open_database(settings.db, metrics=metrics, create=False, pool_min=0, pool_max=3) as db:
        await migrate(db)
        actor = SyncerActor(
            db=db,
            db_settings=settings.db,
            settings=SyncSettings(interval_s=0.2, batch_size=25),
            keyring=keyring(),
            pages=pages,
            metrics=metrics,
        )
        task = asyncio.create_task(actor.run())
        try:
            await until(lambda: _runs(db, "ok", 1), within_s=20)
            ok_before = await _count(db, "SELECT COUNT(*) FROM sync_runs WHERE status = 'ok'")

            server.admin("SET GLOBAL read_only = ON")  # the failover: this server no longer takes writes
            version = 1
            failed = _failed(metrics)
            await until(lambda: _failed_at_least(metrics, failed + 3), within_s=20)
            assert not task.done(), "a read-only server must not crash the actor"
            assert _read_only_errors(metrics) >= 3, "1290 is classified as read_only, not as a bug"
            assert await _count(db, "SELECT COUNT(*) FROM sync_runs WHERE status = 'ok'") == ok_before
            assert await _count(db, CHANGED, ("% v1",)) == 0

            server.admin("SET GLOBAL read_only = OFF")  # the endpoint points at a writer again
            await until(lambda: _runs(db, "ok", ok_before + 1), within_s=20)
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            with contextlib.suppress(Exception):
                server.admin("SET GLOBAL read_only = OFF")

        # Converged, no duplicate, nothing half-written: every row carries the change.
        assert await _count(db, "SELECT COUNT(*) FROM customers") == N
        assert await _count(db, CHANGED, ("% v1",)) == N
        assert await _count(db, "SELECT COUNT(*) FROM sync_runs WHERE status = 'running'") == 0


async def _failed_at_least(metrics: Metrics, n: float) -> bool:
    return _failed(metrics) >= n


async def _count(db: Database, sql: str, params: tuple[object, ...] | None = None) -> int:
    return int(await db.fetch_value(sql, params))


async def _runs(db: Database, status: str, n: int) -> bool:
    return await _count(db, "SELECT COUNT(*) FROM sync_runs WHERE status = %s", (status,)) >= n
