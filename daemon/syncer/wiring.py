"""Where the syncer's pages come from: the provider's API, or in development the built-in simulator.

Used by the runtime (`run`: the simulator is one more supervised actor) and by
`sync --once` (the simulator serves for the one run). The simulator listens on
a loopback socket bound *before* anything starts, so its URL is known when the
syncer is built and the first request simply waits in the listen backlog if
it comes before the simulator's first accept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from daemon.config import Settings
from daemon.config.sync import ProviderSettings
from daemon.observability.metrics import Metrics
from daemon.provider.client import Page, ProviderClient, open_provider_session
from daemon.provider.simulator import Simulator, SimulatorActor, bind_loopback
from daemon.runtime.actor import Actor
from daemon.runtime.resources import Resources
from daemon.syncer.actor import SyncerActor
from daemon.syncer.runner import PageSource

__all__ = ("provider_pages", "simulator", "syncer_actors", "wants_simulator")


def wants_simulator(settings: Settings) -> bool:
    """Development without PROVIDER_URL: serve the built-in simulator (production refuses this config)."""
    return settings.provider.url is None and not settings.production


def simulator(settings: Settings) -> SimulatorActor:
    """The simulator actor on a freshly bound loopback port (its `url` is known at once; `close()` it after)."""
    sim = Simulator(records=settings.simulator.records, seed=settings.simulator.seed)
    return SimulatorActor(simulator=sim, sock=bind_loopback())


def provider_pages(
    session: aiohttp.ClientSession, settings: ProviderSettings, *, metrics: Metrics, url: str | None
) -> PageSource:
    """A page source reading one fresh snapshot per call through the shared session."""

    def pages() -> AsyncIterator[Page]:
        # A stream, so the syncer can fetch a few pages ahead (daemon.syncer.flow).
        return ProviderClient(session=session, settings=settings, metrics=metrics, url=url).stream()

    return pages


async def syncer_actors(resources: Resources) -> list[Actor]:
    """The syncer (and in development without PROVIDER_URL, the simulator it reads from)."""
    settings = resources.settings
    actors: list[Actor] = []
    url = settings.provider.url
    if wants_simulator(settings):
        sim = simulator(settings)
        resources.stack.callback(sim.close)  # the listening socket outlives the actor's restarts
        actors.append(sim)
        url = sim.url
    session = await resources.stack.enter_async_context(open_provider_session(settings.provider))
    actors.append(
        SyncerActor(
            db=resources.db,
            db_settings=settings.db,
            settings=settings.sync,
            keyring=resources.keyring,
            pages=provider_pages(session, settings.provider, metrics=resources.metrics, url=url),
            metrics=resources.metrics,
        )
    )
    return actors
