"""The one owner of SIGTERM and SIGINT.

The first signal sets the stop event (the runtime turns it into an orderly
cancellation) and arms a watchdog: if the process is still alive when the
shutdown budget runs out, it exits 1 by itself instead of waiting for
ECS's SIGKILL. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from daemon.errors import EXIT_FAILURE
from daemon.observability.logs import get_logger

__all__ = ("stop_on_signals",)

log = get_logger("customers_mngr.signals")
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: asyncio.Event, *, budget_s: float) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    watchdog: list[asyncio.TimerHandle] = []

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.error("shutdown_forced", signal=name)
            _hard_exit()
        log.info("shutdown_requested", signal=name, budget_s=budget_s)
        stop.set()
        watchdog.append(loop.call_later(budget_s, _budget_exceeded, budget_s))

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        for handle in watchdog:
            handle.cancel()


def _budget_exceeded(budget_s: float) -> None:
    log.error("shutdown_budget_exceeded", budget_s=budget_s)
    _hard_exit()


def _hard_exit() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_FAILURE)
