"""Sync runs: their counts, their final status, and their row in `sync_runs`.

A run's row is inserted as `running` when the leader starts it and updated
once at the end with its status, counts and a value-free error text. Rows
still `running` when a new leader takes over belong to a process that died
mid-run (kill -9, a lost container): they are closed as failed, abandoned.

Statuses: `ok` (a complete snapshot, nothing quarantined), `partial` (a
complete snapshot with quarantined records, or deletions skipped by the
empty-snapshot guard), `failed` (the snapshot could not be read to its end,
the database failed, leadership was lost, or the process was stopped).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from daemon.db.database import Database
from daemon.errors import DaemonError

__all__ = ("RunCounts", "RunLog", "RunStatus", "RunSummary", "error_text")

RunStatus = Literal["ok", "partial", "failed"]
RUNNING = "running"
_ERROR_MAX = 1024


@dataclass(slots=True)
class RunCounts:
    """What one run did; each name is also a `sync_runs` column."""

    pages: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    restored: int = 0
    rejected: int = 0
    deleted: int = 0
    duplicates: int = 0
    unknown_fields: int = 0

    def add(self, other: RunCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def changed(self) -> int:
        """Rows of `customers` written (what bumps data_version)."""
        return self.inserted + self.updated + self.restored + self.deleted


COUNT_COLUMNS = tuple(f.name for f in fields(RunCounts))

INSERT_RUN = "INSERT INTO sync_runs (started_at, status, leader_epoch) VALUES (NOW(6), %s, %s)"
# Built once from the dataclass's field names (identifiers, not input); values are parameters.
FINISH_RUN = (
    "UPDATE sync_runs SET finished_at = NOW(6), status = %s, complete = %s, error = %s, "  # noqa: S608
    + ", ".join(f"{name} = %s" for name in COUNT_COLUMNS)
    + " WHERE id = %s"
)
ABANDON_RUNS = "UPDATE sync_runs SET finished_at = NOW(6), status = 'failed', error = %s WHERE status = %s"
ABANDONED_ERROR = "abandoned: the process running it stopped before it finished"
# This leader's own rows still `running` when it stops: a run cancelled between its row's INSERT
# (already committed by the server) and the moment its id was known, so the run never closed it.
CLOSE_OWN_RUNS = (
    "UPDATE sync_runs SET finished_at = NOW(6), status = 'failed', error = %s WHERE status = %s AND leader_epoch = %s"
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The outcome of one run: the `sync --once` JSON line and the run's log summary."""

    run_id: int | None
    status: RunStatus
    complete: bool
    duration_s: float
    counts: RunCounts = field(default_factory=RunCounts)
    error: str | None = None
    leader_epoch: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "complete": self.complete,
            "duration_s": round(self.duration_s, 3),
            **asdict(self.counts),
            "error": self.error,
            "leader_epoch": self.leader_epoch,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))


def error_text(exc: BaseException) -> str:
    """One value-free line: a DaemonError's own message, otherwise only the exception's type."""
    text = str(exc) if isinstance(exc, DaemonError) else f"internal error ({type(exc).__name__})"
    return " ".join(text.split())[:_ERROR_MAX] or type(exc).__name__


class RunLog:
    """The `sync_runs` rows of this leader."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def close_abandoned(self) -> int:
        """Mark runs left `running` by a dead leader as failed. Only the lock holder calls this."""
        return await self._db.execute(ABANDON_RUNS, (ABANDONED_ERROR, RUNNING))

    async def close_own(self, epoch: int, error: str) -> int:
        """At a stop: mark this leader's runs still `running` as failed with `error`."""
        return await self._db.execute(CLOSE_OWN_RUNS, (error, RUNNING, epoch))

    async def start(self, epoch: int) -> tuple[int, float]:
        """Insert the run's row; return its id and the monotonic start time."""
        async with self._db.session() as session:
            await session.execute(INSERT_RUN, (RUNNING, epoch))
            run_id = session.last_insert_id()
        return run_id, time.monotonic()

    async def finish(self, summary: RunSummary) -> None:
        counts = [getattr(summary.counts, name) for name in COUNT_COLUMNS]
        params = (summary.status, int(summary.complete), summary.error, *counts, summary.run_id)
        await self._db.execute(FINISH_RUN, params)
