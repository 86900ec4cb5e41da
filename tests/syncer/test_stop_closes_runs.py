"""A stop landing while a run's row is being written leaves no run `running` (found by tests/reliability s3)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from prometheus_client import CollectorRegistry

from daemon.config.sync import SyncSettings
from daemon.observability.metrics import Metrics
from daemon.syncer.actor import SyncerActor
from daemon.syncer.runner import INTERRUPTED
from daemon.syncer.runs import INSERT_RUN, RUNNING, RunLog
from tests.syncer.conftest import SyncDb
from tests.syncer.support import keyring, pages_of, raw_record


async def test_stop_between_the_run_row_insert_and_its_id_closes_the_row(
    sdb: SyncDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM-like cancel after the run's INSERT committed but before `start()` returned: the row ends failed."""
    inserted = asyncio.Event()

    async def start_then_wait(self: RunLog, epoch: int) -> tuple[int, float]:
        async with self._db.session() as session:
            await session.execute(INSERT_RUN, (RUNNING, epoch))
        inserted.set()
        await asyncio.Event().wait()  # the stop arrives here, before the id is handed back
        raise AssertionError("unreachable")

    monkeypatch.setattr(RunLog, "start", start_then_wait)
    actor = SyncerActor(
        db=sdb.db,
        db_settings=sdb.settings.db,
        settings=SyncSettings(interval_s=60, batch_size=25),
        keyring=keyring(),
        pages=pages_of([raw_record(i) for i in range(1, 6)]),
        metrics=Metrics(CollectorRegistry()),
    )
    task = asyncio.create_task(actor.run())
    await asyncio.wait_for(inserted.wait(), 15)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 15)
    rows = await sdb.db.fetch_all("SELECT status, error, finished_at IS NOT NULL FROM sync_runs")
    assert rows == [("failed", INTERRUPTED, 1)]
    lock = "SELECT IS_FREE_LOCK(CONCAT('customers-mngr:syncer:', DATABASE()))"
    assert await sdb.db.fetch_value(lock) == 1, "the writer lock is released after"


async def test_a_stopping_leader_leaves_other_leaders_rows_alone(sdb: SyncDb) -> None:
    """Only the stopping leader's own epoch is closed: a row of another epoch stays as it is."""
    await sdb.db.execute("INSERT INTO sync_runs (started_at, status, leader_epoch) VALUES (NOW(6), 'running', 99)")
    actor = SyncerActor(
        db=sdb.db,
        db_settings=sdb.settings.db,
        settings=SyncSettings(interval_s=60, batch_size=25),
        keyring=keyring(),
        pages=pages_of([]),
        metrics=Metrics(CollectorRegistry()),
    )
    task = asyncio.create_task(actor.run())

    for _ in range(300):  # bounded: the first (empty) run takes well under a second
        if actor.runs_done >= 1:
            break
        await asyncio.sleep(0.05)
    assert actor.runs_done >= 1
    await sdb.db.execute("INSERT INTO sync_runs (started_at, status, leader_epoch) VALUES (NOW(6), 'running', 99)")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 15)
    rows = await sdb.db.fetch_all("SELECT status, leader_epoch FROM sync_runs ORDER BY id")
    assert rows[-1] == ("running", 99), "another epoch's row is the next leader's to close"
