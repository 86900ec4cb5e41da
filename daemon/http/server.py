"""An actor that serves an aiohttp application until cancelled, then drains it.

aiohttp's own lifecycle (AppRunner.setup → TCPSite.start → runner.cleanup)
with signals left to the runtime (`handle_signals=False`) and a shutdown
timeout inside the process's budget, so in-flight requests finish before exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from daemon.http.refused import use_problem_answers
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics

__all__ = ("HttpServerActor",)

log = get_logger("customers_mngr.http")

# aiohttp's defaults are 8 KiB per header line and 32 KiB of fields; ours are explicit.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190


class HttpServerActor:
    """Serves `make_app()` on host:port. A fresh app per (re)start: apps freeze once run."""

    def __init__(
        self,
        *,
        name: str,
        make_app: Callable[[], web.Application],
        host: str,
        port: int,
        shutdown_timeout_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        self._name = name
        self._metrics = metrics
        self._make_app = make_app
        self._host = host
        self._port = port
        self._shutdown_timeout_s = shutdown_timeout_s
        self.bound_port: int | None = None
        self.listening = asyncio.Event()

    @property
    def name(self) -> str:
        return self._name

    async def run(self) -> None:
        runner = web.AppRunner(
            self._make_app(),
            handle_signals=False,
            access_log=None,  # the app's middleware writes a structured access log instead
            shutdown_timeout=self._shutdown_timeout_s,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
        )
        await runner.setup()
        # What the HTTP parser refuses is answered without quoting it, and counted.
        use_problem_answers(runner, on_refused=self._count_refused if self._metrics is not None else None)
        try:
            site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
            await site.start()
            self.bound_port = _bound_port(runner) or self._port
            self.listening.set()
            log.info("http_listening", host=self._host, port=self.bound_port)
            await asyncio.Future()  # serve until cancelled
        finally:
            self.listening.clear()
            log.info("http_draining", timeout_s=self._shutdown_timeout_s)
            await runner.cleanup()
            log.info("http_stopped")

    def _count_refused(self, status: int) -> None:
        if self._metrics is not None:
            self._metrics.http_refused.labels(status=str(status)).inc()


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None
