"""The composition root: resources in one AsyncExitStack, actors in one TaskGroup.

    run_process(settings)
      AsyncExitStack  (closed last, in reverse order)
        database pool (readiness retry; migrations if the mode writes)
        keyring, provider HTTP session, ... (what the mode's actors need)
        TaskGroup
          supervise(actor) for each actor of the mode
          stop watcher: SIGTERM/SIGINT → StopRequested → siblings cancelled
      exit code: 0 on a requested stop, 1 when an actor escalates, 3 when the DB never came

Startup happens inside the same TaskGroup as the stop watcher, so a SIGTERM
while the DB is still being waited for stops the process just as promptly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack

from daemon.config import Settings
from daemon.crypto.keyring import load_keyring
from daemon.db.connect import open_database
from daemon.db.migrate import migrate
from daemon.errors import EXIT_FAILURE, EXIT_OK, ActorEscalated, DaemonError
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics
from daemon.runtime.actor import Actor
from daemon.runtime.assembly import build_actors as build_mode_actors
from daemon.runtime.resources import Resources
from daemon.runtime.supervisor import RestartPolicy, Supervisor

__all__ = ("ActorBuilder", "StopRequested", "run_process")

log = get_logger("customers_mngr.runtime")


class StopRequested(Exception):
    """Raised by the stop watcher to cancel its siblings; becomes exit 0."""


ActorBuilder = Callable[[Resources], Awaitable[Sequence[Actor]]]


async def run_process(
    settings: Settings,
    *,
    metrics: Metrics,
    stop: asyncio.Event,
    build_actors: ActorBuilder = build_mode_actors,
) -> int:
    """Run the mode's actors until `stop` is set or one escalates; return the exit code."""
    exit_code = EXIT_OK
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_serve(settings, metrics=metrics, stop=stop, build_actors=build_actors), name="serve")
            tg.create_task(_watch(stop), name="stop-watcher")
    except* StopRequested:
        pass
    except* ActorEscalated:
        exit_code = EXIT_FAILURE
    except* DaemonError as group:
        first = group.exceptions[0]
        log.error("daemon_failed", error=str(first), error_type=type(first).__name__)
        exit_code = getattr(first, "exit_code", EXIT_FAILURE)
    log.info("daemon_stopped", exit_code=exit_code)
    return exit_code


async def _watch(stop: asyncio.Event) -> None:
    await stop.wait()
    raise StopRequested


async def _serve(
    settings: Settings,
    *,
    metrics: Metrics,
    stop: asyncio.Event,
    build_actors: ActorBuilder,
) -> None:
    log.info("daemon_starting", mode=settings.mode, app_env=settings.app_env)
    # Before any I/O: a missing or unreadable key stops the start (exit 2), the DB is not waited for.
    keyring = load_keyring(
        settings.crypto, production=settings.production, on_decrypt_failure=metrics.decrypt_failures.inc
    )
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(open_database(settings.db, metrics=metrics, create=settings.writes))
        if settings.writes:
            await migrate(db)
        resources = Resources(settings=settings, metrics=metrics, db=db, keyring=keyring, stack=stack)
        actors = await build_actors(resources)
        supervisor = Supervisor(
            RestartPolicy.from_settings(settings.supervisor),
            metrics=metrics,
            debug=settings.log.level == "debug",
        )
        log.info("daemon_started", actors=[a.name for a in actors])
        async with asyncio.TaskGroup() as tg:
            for actor in actors:
                tg.create_task(supervisor.supervise(actor), name=f"actor:{actor.name}")
    stop.set()  # every actor finished by itself: nothing left to serve
