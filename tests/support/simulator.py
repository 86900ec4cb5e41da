"""The provider simulator as a test fixture: in the test's loop, or in a thread for subprocesses.

    async with running_simulator(records=50, seed=3, bad_rate=0.1) as sim:
        settings = make_settings(**provider_env(sim.url))
        ... sync ...
        assert stored == sim.expected()          # the valid state a perfect sync ends with

    with threaded_simulator(records=50) as sim:  # for `customers-mngr sync --once` as a subprocess
        env = {**base_env(...), **provider_env(sim.url)}

`sim` is the `Simulator` itself, served at `sim.url`: churn with
sim.change/remove/restore/add/advance, faults with sim.script(Fault(...)) or
sim.fail_page(n), requests seen in sim.requests. Everything listens on 127.0.0.1, port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from daemon.provider.simulator import Fault, Simulator, SimulatorActor, bind_loopback

__all__ = ("Fault", "Simulator", "provider_env", "running_simulator", "threaded_simulator")


def _simulator(sim: Simulator | None, options: dict[str, Any]) -> Simulator:
    if sim is not None and options:
        raise TypeError("pass a Simulator or options, not both")
    return sim if sim is not None else Simulator(**options)


async def _start(actor: SimulatorActor) -> asyncio.Task[None]:
    task = asyncio.create_task(actor.run(), name="provider-sim")
    waiter = asyncio.ensure_future(actor.listening.wait())
    await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if not actor.listening.is_set():
        waiter.cancel()
        await _stop(task)
        raise RuntimeError("simulator did not start")
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def running_simulator(sim: Simulator | None = None, **options: Any) -> AsyncIterator[Simulator]:
    """Serve a simulator in the current loop; yields it with `.url` set."""
    simulator = _simulator(sim, options)
    actor = SimulatorActor(simulator=simulator, sock=bind_loopback(), shutdown_timeout_s=0.5)
    try:
        task = await _start(actor)
        try:
            yield simulator
        finally:
            await _stop(task)
    finally:
        actor.close()


@contextlib.contextmanager
def threaded_simulator(sim: Simulator | None = None, **options: Any) -> Iterator[Simulator]:
    """Serve a simulator from its own loop in a thread (for daemons run as subprocesses).

    The test thread may mutate the simulator between requests (the GIL serializes
    each call); do it while no request is in flight when exactness matters.
    """
    simulator = _simulator(sim, options)
    actor = SimulatorActor(simulator=simulator, sock=bind_loopback(), shutdown_timeout_s=0.5)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="provider-sim", daemon=True)
    thread.start()
    try:
        task = asyncio.run_coroutine_threadsafe(_start(actor), loop).result(15)
        try:
            yield simulator
        finally:
            asyncio.run_coroutine_threadsafe(_stop(task), loop).result(15)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        actor.close()


def provider_env(url: str, **overrides: str) -> dict[str, str]:
    """Provider settings for tests: the simulator's URL, quick retries and timeouts."""
    env = {
        "PROVIDER_URL": url,
        "PROVIDER_PAGE_SIZE": "10",
        "PROVIDER_TIMEOUT_S": "5",
        "PROVIDER_MAX_RETRIES": "3",
        "PROVIDER_RETRY_MAX_WAIT_S": "0.05",
    }
    env.update(overrides)
    return env
