"""One sync run: provider pages → validated records → fenced batches → soft-delete sweep.

Memory is bounded by the page and the batch: records are parsed as each page
arrives and written every SYNC_BATCH_SIZE; only the set of ids seen is kept
for the whole snapshot (to find duplicates and, once the snapshot is known
complete, the stored rows it no longer contains).

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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from daemon.config.sync import SyncSettings
from daemon.crypto.keyring import Keyring
from daemon.db.database import Database
from daemon.errors import DaemonError, ProviderError
from daemon.observability.logs import get_logger
from daemon.observability.metrics import ANOMALIES, Metrics
from daemon.provider.records import ParsedRecord, Rejected, parse_record
from daemon.syncer.leader import Leadership
from daemon.syncer.runs import RunCounts, RunLog, RunStatus, RunSummary, error_text
from daemon.syncer.store import Batch, Store

__all__ = ("Page", "PageSource", "Progress", "SyncRunner")

log = get_logger("customers_mngr.syncer")


class Page(Protocol):
    """What the runner needs of a provider page (daemon.provider.client.Page has it)."""

    @property
    def records(self) -> Sequence[object]: ...


# A fresh iteration over the provider's snapshot; it ends normally only once the snapshot is complete.
PageSource = Callable[[], AsyncIterator[Page]]
Progress = Callable[[RunCounts, float], None]  # counts so far, seconds since the run started

_FINISH_TIMEOUT_S = 3.0
_OUTCOMES = ("inserted", "updated", "unchanged", "restored", "rejected")
EMPTY_SNAPSHOT = "the snapshot held no valid record: deletions skipped"
INTERRUPTED = "interrupted: the process is stopping"


@dataclass(slots=True)
class _Snapshot:
    """What one run accumulates: its counts, the ids seen, the batch being filled."""

    counts: RunCounts = field(default_factory=RunCounts)
    seen: set[int] = field(default_factory=set)  # valid ids of this snapshot
    kept: set[int] = field(default_factory=set)  # ids of invalid records: stored rows stay
    batch: Batch = field(default_factory=Batch)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self.seen or record_id in self.kept


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
        self._batch_size = settings.batch_size
        self._metrics = metrics
        self._leadership = leadership
        self._store = Store(db=db, keyring=keyring, leadership=leadership)
        self._runs = RunLog(db)
        self.last: RunSummary | None = None  # the latest run's summary, even one cut short by a stop

    async def run(self, epoch: int, *, progress: Progress | None = None) -> RunSummary:
        """One run under leadership `epoch`; its row, metrics and summary line. Re-raises bugs and cancellation."""
        await self._runs.close_abandoned()
        run_id, started = await self._runs.start(epoch)
        log.info("sync_run_started", run_id=run_id, leader_epoch=epoch, batch_size=self._batch_size)
        snap = _Snapshot()
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
        self, snap: _Snapshot, *, run_id: int, epoch: int, started: float, progress: Progress | None
    ) -> None:
        pages = self._pages()
        try:
            async for page in pages:
                snap.counts.pages += 1
                for raw in page.records:
                    self._take(snap, parse_record(raw))
                    if len(snap.batch) >= self._batch_size:
                        await self._flush(snap, run_id=run_id, epoch=epoch)
                if progress is not None:
                    progress(snap.counts, time.monotonic() - started)
        except ProviderError:
            await self._flush(snap, run_id=run_id, epoch=epoch)  # what was read is valid: keep it
            raise
        finally:
            await _aclose(pages)  # a run cut short must not leave the provider's response open
        await self._flush(snap, run_id=run_id, epoch=epoch)

    def _take(self, snap: _Snapshot, parsed: ParsedRecord | Rejected) -> None:
        snap.counts.fetched += 1
        if isinstance(parsed, Rejected):
            snap.batch.rejected.append(parsed)
            if parsed.id is not None:  # the provider still has this customer: its stored row stays
                snap.kept.add(parsed.id)
            return
        if parsed.id in snap.seen:
            snap.counts.duplicates += 1
            self._metrics.sync_anomalies.labels(kind="duplicate_id").inc()
        snap.seen.add(parsed.id)
        snap.batch.records.pop(parsed.id, None)  # the last one of a duplicate wins
        snap.batch.records[parsed.id] = parsed
        if parsed.unknown_fields:
            snap.counts.unknown_fields += parsed.unknown_fields
            self._metrics.sync_unknown_fields.inc(parsed.unknown_fields)
        for kind in parsed.anomalies:
            if kind in ANOMALIES:  # label values stay a fixed, declared set
                self._metrics.sync_anomalies.labels(kind=kind).inc()

    async def _flush(self, snap: _Snapshot, *, run_id: int, epoch: int) -> None:
        if not len(snap.batch):
            return
        batch, snap.batch = snap.batch, Batch()
        done = await self._store.write(batch, run_id=run_id, epoch=epoch)
        snap.counts.add(done)
        for outcome in _OUTCOMES:
            if value := getattr(done, outcome):
                self._metrics.sync_records.labels(outcome=outcome).inc(value)

    async def _delete_missing(self, snap: _Snapshot, *, epoch: int) -> str | None:
        """After a complete snapshot: soft-delete what it no longer holds. A reason when skipped."""
        if not snap.seen and await self._store.count_active():
            log.warning("sync_deletions_skipped", reason=EMPTY_SNAPSHOT)
            return EMPTY_SNAPSHOT
        deleted = await self._store.sweep(snap, epoch=epoch, batch_size=self._batch_size)
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
