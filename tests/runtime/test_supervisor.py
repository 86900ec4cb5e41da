"""The supervisor: restart with backoff, escalation past the budget, cancellation passes through."""

from __future__ import annotations

import asyncio

import pytest

from daemon.errors import ActorEscalated
from daemon.observability.metrics import Metrics
from daemon.runtime.supervisor import RestartPolicy, Supervisor

POLICY = RestartPolicy(max_restarts=3, window_s=60, backoff_initial_s=1, backoff_max_s=8)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Flaky:
    """Crashes `crashes` times, then runs until cancelled (or returns if `finish`)."""

    def __init__(self, crashes: int, *, finish: bool = False) -> None:
        self.name = "flaky"
        self.crashes = crashes
        self.starts = 0
        self.finish = finish

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= self.crashes:
            raise RuntimeError(f"crash {self.starts}")
        if not self.finish:
            await asyncio.Future()


def supervisor(clock: Clock, metrics: Metrics, policy: RestartPolicy = POLICY) -> Supervisor:
    return Supervisor(policy, metrics=metrics, sleep=clock.sleep, clock=clock, rand=lambda: 1.0)


async def test_restarts_after_a_crash_with_growing_backoff(metrics: Metrics) -> None:
    """Each crash restarts the actor after a doubling delay; restarts are counted."""
    clock = Clock()
    actor = Flaky(3, finish=True)
    await supervisor(clock, metrics).supervise(actor)
    assert actor.starts == 4
    assert clock.sleeps == [1, 2, 4]
    assert metrics.actor_restarts.labels(actor="flaky")._value.get() == 3


def test_backoff_is_capped_and_jittered() -> None:
    """The delay never exceeds the cap and never drops below half of it."""
    assert POLICY.delay(10, 1.0) == 8
    assert POLICY.delay(10, 0.0) == 4
    assert POLICY.delay(1, 0.5) == 0.75


async def test_escalates_after_the_budget(metrics: Metrics) -> None:
    """More crashes than max_restarts within the window raise ActorEscalated."""
    clock = Clock()
    actor = Flaky(100)
    with pytest.raises(ActorEscalated, match="flaky crashed 4 times"):
        await supervisor(clock, metrics).supervise(actor)
    assert actor.starts == 4


async def test_old_crashes_leave_the_window(metrics: Metrics) -> None:
    """Crashes older than the window do not count towards escalation."""
    clock = Clock()
    wide_apart = RestartPolicy(max_restarts=1, window_s=5, backoff_initial_s=10, backoff_max_s=10)
    actor = Flaky(6, finish=True)
    await supervisor(clock, metrics, wide_apart).supervise(actor)
    assert actor.starts == 7


async def test_other_actors_keep_running_while_one_restarts(metrics: Metrics) -> None:
    """A crashing actor does not disturb its siblings in the same task group."""
    steady_ticks = 0

    class Steady:
        name = "steady"

        async def run(self) -> None:
            nonlocal steady_ticks
            while True:
                steady_ticks += 1
                await asyncio.sleep(0.01)

    sup = Supervisor(POLICY, metrics=metrics, sleep=lambda s: asyncio.sleep(0.05), rand=lambda: 1.0)
    with pytest.raises(ExceptionGroup) as caught:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(sup.supervise(Steady()))
            tg.create_task(sup.supervise(Flaky(100)))
    assert caught.group_contains(ActorEscalated)
    assert steady_ticks >= 5


async def test_cancellation_is_not_a_crash(metrics: Metrics) -> None:
    """Cancelling a supervised actor propagates CancelledError and counts no restart."""
    clock = Clock()
    task = asyncio.create_task(supervisor(clock, metrics).supervise(Flaky(0)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert metrics.actor_restarts.labels(actor="flaky")._value.get() == 0
    assert metrics.actor_up.labels(actor="flaky")._value.get() == 0
