"""Request limits by one shared sweep: asyncio.timeout's behaviour, without a timer per request."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from daemon.api.deadlines import Deadlines

TICK = 0.01


async def test_a_body_past_its_limit_gets_timeout_error_within_a_tick() -> None:
    """A body still waiting at its deadline is cancelled and leaves with TimeoutError, at most a tick late."""
    deadlines = Deadlines(tick_s=TICK)
    started = time.monotonic()
    with pytest.raises(TimeoutError), deadlines.limit(0.05):
        await asyncio.sleep(5)
    elapsed = time.monotonic() - started
    assert 0.05 <= elapsed < 1.0
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0, "our cancellation was withdrawn"
    assert len(deadlines) == 0


async def test_a_body_in_time_is_untouched_and_the_sweep_stops_when_idle() -> None:
    """Bodies that finish in time see nothing; once none is registered the timer is no longer armed."""
    deadlines = Deadlines(tick_s=TICK)
    for _ in range(50):
        with deadlines.limit(1.0):
            await asyncio.sleep(0)
    assert len(deadlines) == 0
    await asyncio.sleep(3 * TICK)
    assert not deadlines.armed
    with deadlines.limit(1.0):
        assert deadlines.armed and len(deadlines) == 1


async def test_concurrent_limits_expire_independently() -> None:
    """Many tasks at once: only those past their own deadline time out, the others finish."""
    deadlines = Deadlines(tick_s=TICK)

    async def body(timeout_s: float, work_s: float) -> str:
        try:
            with deadlines.limit(timeout_s):
                await asyncio.sleep(work_s)
        except TimeoutError:
            return "timeout"
        return "done"

    results = await asyncio.gather(*(body(0.05, 2.0) if i % 2 else body(2.0, 0.02) for i in range(40)))
    assert results == ["done" if i % 2 == 0 else "timeout" for i in range(40)]
    assert len(deadlines) == 0


async def test_an_outside_cancellation_is_not_turned_into_a_timeout() -> None:
    """A task cancelled by someone else (a shutdown) gets its CancelledError, even if its limit also expired."""
    deadlines = Deadlines(tick_s=TICK)

    async def body(limit_s: float) -> None:
        with deadlines.limit(limit_s):
            await asyncio.sleep(5)

    early = asyncio.create_task(body(5.0))
    await asyncio.sleep(0.02)
    early.cancel()
    with pytest.raises(asyncio.CancelledError):
        await early

    # Both at once: the limit expires and a shutdown cancels before the task runs again.
    entered = asyncio.Event()

    async def short() -> None:
        with deadlines.limit(0.001):
            entered.set()
            await asyncio.sleep(5)

    both = asyncio.create_task(short())
    await entered.wait()
    time.sleep(0.005)  # noqa: ASYNC251 - past the deadline while blocking the loop: no sweep can run before ours
    deadlines._sweep(asyncio.get_running_loop())  # the limit expires: cancels the task
    both.cancel()  # and the shutdown's own cancellation
    with pytest.raises(asyncio.CancelledError):
        await both
    assert len(deadlines) == 0


async def test_a_body_that_swallows_the_cancellation_ends_normally_with_the_count_restored() -> None:
    """As with asyncio.timeout: if the body handles the cancellation itself, no TimeoutError, and the task's
    cancel count is back where it was."""
    deadlines = Deadlines(tick_s=TICK)
    with deadlines.limit(0.02) as limit, contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert limit.expired
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_close_stops_the_sweep() -> None:
    """After close (application cleanup) no timer is left armed and registered limits no longer fire."""
    deadlines = Deadlines(tick_s=TICK)
    with deadlines.limit(0.02):
        deadlines.close()
        assert not deadlines.armed
        await asyncio.sleep(0.06)  # would have expired: nothing happens


def test_tick_must_be_positive() -> None:
    """A zero or negative tick is refused."""
    with pytest.raises(ValueError, match="tick"):
        Deadlines(tick_s=0)
