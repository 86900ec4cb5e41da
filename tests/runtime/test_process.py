"""The composition root: stop → exit 0 with resources closed; escalation → exit 1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from daemon.config import Settings
from daemon.errors import EXIT_FAILURE, EXIT_OK
from daemon.observability.metrics import Metrics
from daemon.runtime.actor import Actor
from daemon.runtime.process import run_process
from daemon.runtime.resources import Resources


async def test_stop_event_cancels_actors_and_closes_the_pool(
    make_settings: Callable[..., Settings], metrics: Metrics
) -> None:
    """Setting stop cancels every actor, runs their clean-up, closes the pool, returns 0."""
    events: list[str] = []
    started = asyncio.Event()
    pools = []

    class Worker:
        name = "worker"

        async def run(self) -> None:
            events.append("started")
            started.set()
            try:
                await asyncio.Future()
            finally:
                events.append("cleaned")

    async def build(resources: Resources) -> Sequence[Actor]:
        pools.append(resources.db.pool)
        return [Worker()]

    stop = asyncio.Event()
    task = asyncio.create_task(run_process(make_settings(), metrics=metrics, stop=stop, build_actors=build))
    async with asyncio.timeout(10):
        await started.wait()
    stop.set()
    assert await asyncio.wait_for(task, 10) == EXIT_OK
    assert events == ["started", "cleaned"]
    assert pools[0]._closed


async def test_escalation_exits_1(make_settings: Callable[..., Settings], metrics: Metrics) -> None:
    """An actor that keeps crashing makes the process exit non-zero."""

    class Broken:
        name = "broken"

        async def run(self) -> None:
            raise RuntimeError("boom")

    async def build(_resources: Resources) -> Sequence[Actor]:
        return [Broken()]

    settings = make_settings(
        SUPERVISOR_MAX_RESTARTS="2", SUPERVISOR_BACKOFF_INITIAL_S="0.01", SUPERVISOR_BACKOFF_MAX_S="0.02"
    )
    code = await asyncio.wait_for(run_process(settings, metrics=metrics, stop=asyncio.Event(), build_actors=build), 10)
    assert code == EXIT_FAILURE
    assert metrics.actor_restarts.labels(actor="broken")._value.get() == 2


async def test_stop_during_db_wait_is_prompt(make_settings: Callable[..., Settings], metrics: Metrics) -> None:
    """A stop while the DB is still being waited for ends the process at once with 0."""
    settings = make_settings(port=1, DB_CONNECT_TIMEOUT_S="60")  # nothing listens on port 1
    stop = asyncio.Event()
    task = asyncio.create_task(run_process(settings, metrics=metrics, stop=stop))
    await asyncio.sleep(0.5)
    stop.set()
    assert await asyncio.wait_for(task, 5) == EXIT_OK
