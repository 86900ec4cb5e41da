"""`customers-mngr sync --once`: one sync run now, its summary as one JSON line on stdout.

Exit codes: 0 ok, 4 partial (records quarantined or deletions skipped), 1 failed
(or another syncer holds the writer lock, or stopped by a signal), 2 bad
configuration, 3 database unreachable. Logs go to stderr so stdout carries the
summary only; on a terminal, stderr also shows a live progress line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any, TextIO

from daemon.buildinfo import git_commit
from daemon.cli.common import load_or_exit, run_async
from daemon.config import Settings
from daemon.crypto.keyring import Keyring, load_keyring
from daemon.db.connect import open_database
from daemon.db.migrate import migrate
from daemon.errors import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL
from daemon.observability.logs import configure_logging, get_logger
from daemon.observability.metrics import Metrics
from daemon.provider.client import open_provider_session
from daemon.runtime.signals import stop_on_signals
from daemon.syncer.leader import Leadership
from daemon.syncer.runner import SyncRunner
from daemon.syncer.runs import RunCounts, RunSummary
from daemon.syncer.wiring import provider_pages, simulator, wants_simulator

__all__ = ("ProgressLine", "register")

log = get_logger("customers_mngr.cli")

EXIT_BY_STATUS = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_FAILURE}
NOT_LEADER = "another syncer holds the writer lock (a running daemon leads); nothing was done"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "sync",
        help="run one sync now and exit",
        description="Run one sync (provider → validated, encrypted rows) and print its summary as one JSON line. "
        "Exit 0 ok, 4 partial (records quarantined or deletions skipped), 1 failed or another syncer leads, "
        "2 bad configuration, 3 DB unreachable. Logs go to stderr.",
    )
    parser.add_argument(
        "--once", action="store_true", required=True, help="one run, then exit (the continuous syncer is `run`)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line, even on a terminal")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = load_or_exit(env, mode="syncer")
    configure_logging(settings.log, stream=sys.stderr)  # stdout is the summary line alone
    progress = ProgressLine(sys.stderr) if not args.no_progress and _isatty(sys.stderr) else None
    return run_async(_main(settings, progress), env=env)


class _StopRequested(Exception):
    pass


async def _main(settings: Settings, progress: ProgressLine | None) -> int:
    metrics = Metrics(git_commit=git_commit())
    keyring = load_keyring(
        settings.crypto, production=settings.production, on_decrypt_failure=metrics.decrypt_failures.inc
    )
    stop = asyncio.Event()
    runner: list[SyncRunner] = []
    summary: RunSummary | None = None
    with stop_on_signals(stop, budget_s=settings.supervisor.shutdown_timeout_s):
        try:
            async with asyncio.TaskGroup() as tg:
                watcher = tg.create_task(_raise_on(stop), name="stop-watcher")
                summary = await _once(settings, metrics=metrics, keyring=keyring, progress=progress, runner=runner)
                watcher.cancel()
        except* _StopRequested:
            summary = runner[0].last if runner else None
        finally:
            if progress is not None:
                progress.close()
    if summary is None:
        print(json.dumps({"run_id": None, "status": "skipped", "error": NOT_LEADER}), flush=True)
        return EXIT_FAILURE
    print(summary.to_json(), flush=True)
    return EXIT_BY_STATUS[summary.status]


async def _raise_on(stop: asyncio.Event) -> None:
    await stop.wait()
    raise _StopRequested


async def _once(
    settings: Settings, *, metrics: Metrics, keyring: Keyring, progress: ProgressLine | None, runner: list[SyncRunner]
) -> RunSummary | None:
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(
            open_database(settings.db, metrics=metrics, create=True, pool_min=1, pool_max=2)
        )
        await migrate(db)
        session = await stack.enter_async_context(open_provider_session(settings.provider))
        async with asyncio.TaskGroup() as tg:
            url = settings.provider.url
            sim_task = None
            if wants_simulator(settings):
                sim = simulator(settings)
                stack.callback(sim.close)
                url = sim.url
                sim_task = tg.create_task(sim.run(), name="simulator")
            leadership = Leadership(db_settings=settings.db, metrics=metrics)
            runner.append(
                SyncRunner(
                    db=db,
                    keyring=keyring,
                    leadership=leadership,
                    pages=provider_pages(session, settings.provider, metrics=metrics, url=url),
                    settings=settings.sync,
                    metrics=metrics,
                )
            )
            try:
                epoch = await leadership.acquire()
                if epoch is None:
                    log.warning("sync_run_skipped", reason=NOT_LEADER)
                    return None
                summary = await runner[0].run(epoch, progress=progress)
                if progress is not None:
                    progress(summary.counts, summary.duration_s, force=True)
                return summary
            finally:
                await leadership.release()
                if sim_task is not None:
                    sim_task.cancel()


class ProgressLine:
    """One self-rewriting line on a terminal: pages, records, rate and outcomes so far (≤ 10 redraws/s)."""

    def __init__(self, stream: TextIO, *, min_interval_s: float = 0.1) -> None:
        self._stream = stream
        self._min_interval_s = min_interval_s
        self._last = float("-inf")  # the first call always draws
        self._drawn = False

    def __call__(self, counts: RunCounts, elapsed_s: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if now - self._last < self._min_interval_s and not force:
            return
        self._last = now
        rate = counts.fetched / elapsed_s if elapsed_s > 0 else 0.0
        self._stream.write(
            f"\r\x1b[Ksync  pages {counts.pages:,}  records {counts.fetched:,}  {rate:,.0f} rec/s  "
            f"[new {counts.inserted:,} · changed {counts.updated:,} · same {counts.unchanged:,} · "
            f"restored {counts.restored:,} · rejected {counts.rejected:,}]"
        )
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
