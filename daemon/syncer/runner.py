"""One sync run: provider pages → validated records → fenced batches → soft-delete sweep.

Memory is bounded by the page and the batch: records are parsed as each page
arrives and written every SYNC_BATCH_SIZE; only the set of ids seen is kept
for the whole snapshot (to find duplicates and, once the snapshot is known
complete, the stored rows it no longer contains).

The fetch-and-store stage (flow.py) overlaps its steps in one TaskGroup per
run: the next page is fetched while the current one is processed, one batch is
written while the next is filled, and records whose raw hash matches their
stored row's are skipped before validation. Every task is awaited or cancelled
before the run ends.

Outcomes of a run (the `sync_runs` row, the metrics, the summary line):
- ok: every page read, every record valid, deletions done;
- partial: every page read, but records were quarantined, or deletions were
  skipped because the snapshot held no valid record while rows are stored
  (an empty answer is far likelier a provider fault than a deleted customer base);
- failed: the snapshot could not be read to its end (the provider client gives
  up on a page only after its retries), the DB failed, leadership was lost, or
  the process was asked to stop. Batches already committed stay — each is
  consistent on its own — and nothing is deleted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

from daemon.config.sync import SyncSettings
from daemon.crypto.keyring import Keyring
from daemon.db.database import Database
from daemon.errors import DaemonError
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics
from daemon.syncer.flow import Flow, Page, Progress, Snapshot
from daemon.syncer.leader import Leadership
from daemon.syncer.runs import RunLog, RunStatus, RunSummary, error_text
from daemon.syncer.store import Store

__all__ = ("Page", "PageSource", "Progress", "SyncRunner")

log = get_logger("customers_mngr.syncer")


# A fresh iteration over the provider's snapshot; it ends normally only once the snapshot is complete.
PageSource = Callable[[], AsyncIterator[Page]]

_FINISH_TIMEOUT_S = 3.0
EMPTY_SNAPSHOT = "the snapshot held no valid record: deletions skipped"
INTERRUPTED = "interrupted: the process is stopping"


class SyncRunner:
    """Runs syncs for one leader; the actor and `sync --once` share it."""

    def __init__(
        self,
        *,
        db: Database,
        keyring: Keyring,
        leadership: Leadership,
        pages: PageSource,
        settings: SyncSettings,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._pages = pages
        self.batch_size = settings.batch_size
        self._metrics = metrics
        self._leadership = leadership
        self._keyring = keyring
        self._store = Store(db=db, keyring=keyring, leadership=leadership)
        self._runs = RunLog(db)
        self.last: RunSummary | None = None  # the latest run's summary, even one cut short by a stop

    async def run(self, epoch: int, *, progress: Progress | None = None) -> RunSummary:
        """One run under leadership `epoch`; its row, metrics and summary line. Re-raises bugs and cancellation."""
        await self._runs.close_abandoned()
        run_id, started = await self._runs.start(epoch)
        log.info("sync_run_started", run_id=run_id, leader_epoch=epoch, batch_size=self.batch_size)
        snap = Snapshot()
        status: RunStatus = "failed"
        complete = False
        error: str | None = None
        try:
            await self._fetch_and_store(snap, run_id=run_id, epoch=epoch, started=started, progress=progress)
            complete = True
            error = await self._delete_missing(snap, epoch=epoch)
            status = "partial" if error or snap.counts.rejected else "ok"
        except asyncio.CancelledError:
            error = INTERRUPTED
            raise
        except DaemonError as exc:
            error = error_text(exc)
        except Exception as exc:  # a bug: recorded as a failed run, then the supervisor sees the crash
            error = error_text(exc)
            raise
        finally:
            summary = RunSummary(
                run_id=run_id,
                status=status,
                complete=complete,
                duration_s=time.monotonic() - started,
                counts=snap.counts,
                error=error,
                leader_epoch=epoch,
            )
            self.last = summary
            await self._finish(summary)
        return summary

    async def close_interrupted(self, epoch: int | None) -> None:
        """At a stop, close this leader's run rows still `running`. Bounded; never raises.

        `run()` closes its own row whatever happens once it knows the row's id; a stop that
        lands while the row's INSERT is in flight leaves a committed row it never learnt of
        (the next leader would close it as abandoned, but a graceful stop should not need one).
        """
        if epoch is None:
            return
        try:
            async with asyncio.timeout(_FINISH_TIMEOUT_S):
                await self._runs.close_own(epoch, INTERRUPTED)
        except (DaemonError, TimeoutError) as exc:
            log.warning("sync_runs_not_closed", leader_epoch=epoch, error=error_text(exc))

    async def _fetch_and_store(
        self, snap: Snapshot, *, run_id: int, epoch: int, started: float, progress: Progress | None
    ) -> None:
        pages = self._pages()
        try:
            # No live row with a raw hash (a first load, or the first run after an upgrade): nothing
            # to look up. Rows are built as records are parsed when most will be written: on an
            # empty table, or when the lookups leave only new and changed records to parse.
            state = await self._store.state()
            async with asyncio.TaskGroup() as tasks:
                flow = Flow(
                    tasks,
                    snap,
                    store=self._store,
                    keyring=self._keyring,
                    metrics=self._metrics,
                    batch_size=self.batch_size,
                    run_id=run_id,
                    epoch=epoch,
                    lookups=state.has_raw_hashes,
                    prepare=state.has_raw_hashes or not state.has_rows,
                )
                failure = await flow.run(pages, started=started, progress=progress)
        finally:
            await _aclose(pages)  # a run cut short must not leave the provider's response open
        if failure is not None:
            raise failure

    async def _delete_missing(self, snap: Snapshot, *, epoch: int) -> str | None:
        """After a complete snapshot: soft-delete what it no longer holds. A reason when skipped."""
        live = await self._store.count_active()
        if not snap.seen and live:
            log.warning("sync_deletions_skipped", reason=EMPTY_SNAPSHOT)
            return EMPTY_SNAPSHOT
        if live == len(snap.seen):
            # Every valid id of the snapshot is a live row now (written or found unchanged), so
            # as many live rows as ids seen means no other live row: nothing to read or delete.
            return None
        deleted = await self._store.sweep(snap, epoch=epoch, batch_size=self.batch_size)
        snap.counts.deleted = deleted
        if deleted:
            self._metrics.sync_records.labels(outcome="deleted").inc(deleted)
        return None

    async def _finish(self, summary: RunSummary) -> None:
        """The run's row, metrics and summary line. Bounded, so a stop or an outage cannot hang it.

        The metrics and the summary line come even when a stop cuts the row's update short
        (a row left `running` is closed as abandoned by the next leader).
        """
        try:
            async with asyncio.timeout(_FINISH_TIMEOUT_S):
                await self._runs.finish(summary)
        except (DaemonError, TimeoutError) as exc:
            log.warning("sync_run_not_recorded", run_id=summary.run_id, error=error_text(exc))
        finally:
            record_run_metrics(self._metrics, summary)
            log_summary(summary)


async def _aclose(pages: AsyncIterator[Page]) -> None:
    aclose = getattr(pages, "aclose", None)
    if aclose is not None:
        await aclose()


def record_run_metrics(metrics: Metrics, summary: RunSummary) -> None:
    now = time.time()
    metrics.sync_runs.labels(status=summary.status).inc()
    metrics.sync_run_duration.observe(summary.duration_s)
    metrics.sync_last_run.set(now)
    if summary.status != "failed":
        metrics.sync_last_success.set(now)


def log_summary(summary: RunSummary) -> None:
    level = {"ok": log.info, "partial": log.warning, "failed": log.error}[summary.status]
    level("sync_run_finished", **summary.as_dict())
