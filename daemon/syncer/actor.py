"""The syncer actor: a run at start, then every SYNC_INTERVAL_S (±10%), by the leader only.

    run()
      loop:  take or keep the writer lock ──> not the leader: skip (logged, counted)
                                         └──> leader: one run (its row, metrics, summary line)
             sleep until the next jittered start (pinging the lock session meanwhile)
      finally: close this leader's runs still `running`, release the lock (closing its connection
               releases it anyway)

Ordinary outages — the provider down, the DB gone, leadership lost — end the
run as failed and the schedule goes on; the actor does not crash for them
(the supervisor would only restart it into the same outage). A bug does
crash it, after its run is recorded as failed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from daemon.config.database import DbSettings
from daemon.config.sync import SyncSettings
from daemon.crypto.keyring import Keyring
from daemon.crypto.usage import refresh_key_metrics
from daemon.db.database import Database
from daemon.errors import DaemonError
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics
from daemon.syncer.leader import KEEPALIVE_S, Leadership, LeadershipLost
from daemon.syncer.runner import PageSource, SyncRunner
from daemon.syncer.runs import error_text
from daemon.syncer.schedule import next_delay

__all__ = ("SyncerActor",)

log = get_logger("customers_mngr.syncer")


class SyncerActor:
    name = "syncer"

    def __init__(
        self,
        *,
        db: Database,
        db_settings: DbSettings,
        settings: SyncSettings,
        keyring: Keyring,
        pages: PageSource,
        metrics: Metrics,
        rand: Callable[[], float] = random.random,
        holder: str | None = None,
    ) -> None:
        self._db = db
        self._db_settings = db_settings
        self._settings = settings
        self._keyring = keyring
        self._pages = pages
        self._metrics = metrics
        self._rand = rand
        self._holder = holder
        self.runs_done = 0  # ticks completed (run or skipped), for tests and debugging

    async def run(self) -> None:
        leadership = Leadership(db_settings=self._db_settings, metrics=self._metrics, holder=self._holder)
        runner = SyncRunner(
            db=self._db,
            keyring=self._keyring,
            leadership=leadership,
            pages=self._pages,
            settings=self._settings,
            metrics=self._metrics,
        )
        try:
            while True:
                started = time.monotonic()
                await self._tick(leadership, runner)
                self.runs_done += 1
                delay = next_delay(self._settings.interval_s, time.monotonic() - started, self._rand)
                log.debug("sync_next_run", in_s=round(delay, 3))
                await self._idle(leadership, delay)
        finally:
            await runner.close_interrupted(leadership.epoch if leadership.held else None)
            await leadership.release()

    async def _idle(self, leadership: Leadership, delay_s: float) -> None:
        """Wait for the next run, pinging the lock session so the server never drops it as idle."""
        deadline = time.monotonic() + delay_s
        while (remaining := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(remaining, KEEPALIVE_S))
            if leadership.held and deadline - time.monotonic() > 0:
                try:
                    await leadership.verify()
                except LeadershipLost as exc:  # taken again (or not) at the next run
                    log.warning("sync_leadership_lost", reason=str(exc))

    async def _tick(self, leadership: Leadership, runner: SyncRunner) -> None:
        try:
            epoch = await leadership.acquire()
        except DaemonError as exc:
            self._failed_without_row(exc, doing="take the writer lock")
            return
        if epoch is None:
            self._metrics.sync_skipped.inc()
            log.info("sync_run_skipped", reason="another replica holds the writer lock")
            return
        try:
            await runner.run(epoch)
        except DaemonError as exc:  # the run's row itself could not be written: the DB is out
            self._failed_without_row(exc, doing="record the run")
            return
        await self._refresh_key_metrics()

    async def _refresh_key_metrics(self) -> None:
        """customers_mngr_encrypted_values{key_id} after each run (what a key rotation watches drain)."""
        try:
            await refresh_key_metrics(self._db, self._keyring, self._metrics)
        except DaemonError as exc:
            log.warning("key_metrics_not_refreshed", error=error_text(exc))

    def _failed_without_row(self, exc: DaemonError, *, doing: str) -> None:
        self._metrics.sync_runs.labels(status="failed").inc()
        self._metrics.sync_last_run.set(time.time())
        log.error("sync_run_failed", doing=doing, error=error_text(exc))
