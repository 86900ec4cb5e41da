"""`customers-mngr run [--mode all|api|syncer]`: the daemon."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from typing import Any

from daemon.buildinfo import git_commit
from daemon.cli.common import load_or_exit, run_async
from daemon.config import Settings
from daemon.config.process import MODES
from daemon.observability.metrics import Metrics
from daemon.runtime.process import run_process
from daemon.runtime.signals import stop_on_signals

__all__ = ("register",)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run the daemon",
        description="Run the daemon until SIGTERM/SIGINT (exit 0), "
        "or until an actor exhausts its restart budget (exit 1). Exit 2: bad configuration; 3: DB unreachable.",
    )
    parser.add_argument("--mode", choices=MODES, default=None, help="which actors to run (default: $MODE, else all)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    settings = load_or_exit(env, mode=args.mode)
    return run_async(_main(settings), env=env)


async def _main(settings: Settings) -> int:
    stop = asyncio.Event()
    metrics = Metrics(git_commit=git_commit())
    with stop_on_signals(stop, budget_s=settings.supervisor.shutdown_timeout_s):
        return await run_process(settings, metrics=metrics, stop=stop)
