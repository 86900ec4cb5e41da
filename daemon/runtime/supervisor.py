"""One-for-one supervision: restart a crashed actor with backoff, escalate past a budget.

Each actor runs in its own task of the runtime's TaskGroup. When `run()`
raises, the supervisor logs the error, counts the restart and starts it
again after an exponential, jittered delay, while the other actors keep
running. More than `max_restarts` crashes within `window_s` raises
`ActorEscalated`: the TaskGroup stops everything and the process exits 1,
so the orchestrator (ECS) replaces the task — mode's CrashingSupervisor idea,
with the backoff mode lacked.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from daemon.config.process import SupervisorSettings
from daemon.errors import ActorEscalated, DaemonError
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics
from daemon.runtime.actor import Actor

__all__ = ("RestartPolicy", "Supervisor")

log = get_logger("customers_mngr.supervisor")


@dataclass(frozen=True, kw_only=True, slots=True)
class RestartPolicy:
    max_restarts: int
    window_s: float
    backoff_initial_s: float
    backoff_max_s: float

    @classmethod
    def from_settings(cls, settings: SupervisorSettings) -> RestartPolicy:
        return cls(
            max_restarts=settings.max_restarts,
            window_s=settings.window_s,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
        )

    def delay(self, crashes: int, rand: float) -> float:
        """Exponential backoff with full jitter over the upper half: never zero, never above the cap."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** max(0, crashes - 1))
        return float(ceiling / 2 + ceiling / 2 * rand)


class Supervisor:
    """Runs actors and restarts them; the sleep, clock and randomness are injectable for tests."""

    def __init__(
        self,
        policy: RestartPolicy,
        *,
        metrics: Metrics,
        debug: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._metrics = metrics
        self._debug = debug
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    async def supervise(self, actor: Actor) -> None:
        """Run `actor` until it returns, restarting it on crashes; raise ActorEscalated past the budget."""
        name = actor.name
        self._metrics.init_actor(name)
        crashes: deque[float] = deque()
        with structlog.contextvars.bound_contextvars(actor=name):
            while True:
                self._metrics.actor_up.labels(actor=name).set(1)
                try:
                    await actor.run()
                except Exception as exc:  # CancelledError is a BaseException: it passes through
                    crashes.append(self._clock())
                    self._forget_old(crashes)
                    if len(crashes) > self._policy.max_restarts:
                        log.error("actor_gave_up", error=str(exc), crashes=len(crashes), **self._trace(exc))
                        raise ActorEscalated(name, len(crashes), self._policy.window_s) from exc
                    delay = self._policy.delay(len(crashes), self._rand())
                    log.error(
                        "actor_crashed",
                        error=str(exc) or type(exc).__name__,
                        restart_in_s=round(delay, 3),
                        crashes_in_window=len(crashes),
                        **self._trace(exc),
                    )
                    self._metrics.actor_restarts.labels(actor=name).inc()
                    self._metrics.actor_up.labels(actor=name).set(0)
                    await self._sleep(delay)
                    log.info("actor_restarting")
                else:
                    log.info("actor_finished")
                    return
                finally:
                    self._metrics.actor_up.labels(actor=name).set(0)

    def _forget_old(self, crashes: deque[float]) -> None:
        horizon = self._clock() - self._policy.window_s
        while crashes and crashes[0] < horizon:
            crashes.popleft()

    def _trace(self, exc: Exception) -> dict[str, object]:
        """Tracebacks for bugs; expected failures (DaemonError) get one line unless debugging."""
        if isinstance(exc, DaemonError) and not self._debug:
            return {"error_type": type(exc).__name__}
        return {"error_type": type(exc).__name__, "exc_info": exc}
