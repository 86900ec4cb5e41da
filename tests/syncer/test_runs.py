"""Run bookkeeping: one sync_runs row per run, abandoned runs closed, value-free errors, the schedule."""

from __future__ import annotations

import json

from daemon.errors import ProviderError
from daemon.syncer.runs import ABANDONED_ERROR, RunCounts, RunLog, RunSummary, error_text
from daemon.syncer.schedule import JITTER, next_delay
from tests.syncer.conftest import SyncDb


async def test_run_row_from_start_to_finish(sdb: SyncDb) -> None:
    """start() inserts a running row with the epoch; finish() stores status, counts, error and the end time."""
    runs = RunLog(sdb.db)
    run_id, _ = await runs.start(7)
    row = await sdb.db.fetch_one("SELECT status, leader_epoch, finished_at FROM sync_runs WHERE id = %s", (run_id,))
    assert row == ("running", 7, None)
    counts = RunCounts(pages=3, fetched=250, inserted=200, updated=20, unchanged=20, rejected=10, duplicates=2)
    await runs.finish(RunSummary(run_id, "partial", True, 1.5, counts, None, 7))
    stored = await sdb.db.fetch_one(
        "SELECT status, complete, pages, fetched, inserted, updated, unchanged, rejected, duplicates, error, "
        "finished_at >= started_at FROM sync_runs WHERE id = %s",
        (run_id,),
    )
    assert stored == ("partial", 1, 3, 250, 200, 20, 20, 10, 2, None, 1)


async def test_runs_left_running_are_closed_as_abandoned(sdb: SyncDb) -> None:
    """A run left `running` by a dead leader is marked failed by the next leader; finished runs are untouched."""
    runs = RunLog(sdb.db)
    dead, _ = await runs.start(1)
    done, _ = await runs.start(1)
    await runs.finish(RunSummary(done, "ok", True, 0.1, RunCounts(), None, 1))
    assert await runs.close_abandoned() == 1
    rows = dict(await sdb.db.fetch_all("SELECT id, status FROM sync_runs"))
    assert rows == {dead: "failed", done: "ok"}
    assert await sdb.db.fetch_value("SELECT error FROM sync_runs WHERE id = %s", (dead,)) == ABANDONED_ERROR


def test_summary_is_one_json_line() -> None:
    """The summary serialises to one JSON line with the status, every count and the error."""
    line = RunSummary(5, "failed", False, 2.34567, RunCounts(pages=1, inserted=4), "provider: boom", 3).to_json()
    assert "\n" not in line
    data = json.loads(line)
    assert data["status"] == "failed" and data["inserted"] == 4 and data["pages"] == 1
    assert data["error"] == "provider: boom" and data["duration_s"] == 2.346 and data["complete"] is False


def test_error_text_is_value_free() -> None:
    """A DaemonError keeps its one-line message; any other exception is reduced to its type."""
    assert error_text(ProviderError("page 3: HTTP 503\nafter 5 retries")) == "page 3: HTTP 503 after 5 retries"
    assert error_text(KeyError("4111111111111111")) == "internal error (KeyError)"
    assert len(error_text(ProviderError("x" * 5000))) == 1024


def test_next_delay_is_jittered_start_to_start() -> None:
    """The delay is the interval ±10% minus the run's duration, never negative."""
    assert next_delay(100, 0, lambda: 0.0) == 100 * (1 - JITTER)
    assert abs(next_delay(100, 0, lambda: 0.999999) - 100 * (1 + JITTER)) < 1e-3
    assert next_delay(100, 30, lambda: 0.5) == 70
    assert next_delay(100, 500, lambda: 0.5) == 0
