"""Which actors each mode runs, and what they are built from.

all     api (customers API + ops routes on API_PORT) and syncer
api     api only (never writes, never runs DDL)
syncer  syncer, and the probe server (ops routes on METRICS_PORT)
(all and syncer in development without PROVIDER_URL: + the provider simulator on a loopback port)
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from daemon.api.app import build_api_app
from daemon.http.ops import Readiness, add_ops_routes
from daemon.http.server import HttpServerActor
from daemon.runtime.actor import Actor
from daemon.runtime.resources import Resources
from daemon.syncer.wiring import syncer_actors

__all__ = ("build_actors",)


async def build_actors(resources: Resources) -> Sequence[Actor]:
    settings = resources.settings
    actors: list[Actor] = []
    if settings.mode in ("all", "api"):
        actors.append(_api_actor(resources))
    if settings.mode in ("all", "syncer"):
        actors.extend(await syncer_actors(resources))  # + the simulator in development without PROVIDER_URL
    if settings.mode == "syncer":
        actors.append(_http_actor(resources, name="probe", host=settings.metrics.host, port=settings.metrics.port))
    return actors


def _api_actor(resources: Resources) -> HttpServerActor:
    """The customers API (and its ops routes) on API_PORT; a fresh app, cache included, per restart."""
    settings = resources.settings

    def make_app() -> web.Application:
        return build_api_app(
            db=resources.db, keyring=resources.keyring, settings=settings.api, metrics=resources.metrics
        )

    return HttpServerActor(
        name="api",
        make_app=make_app,
        host=settings.api.host,
        port=settings.api.port,
        shutdown_timeout_s=max(1.0, settings.supervisor.shutdown_timeout_s - 5),
        metrics=resources.metrics,
    )


def _http_actor(resources: Resources, *, name: str, host: str, port: int) -> HttpServerActor:
    def make_app() -> web.Application:
        app = web.Application()
        add_ops_routes(app, readiness=Readiness(db=resources.db), metrics=resources.metrics)
        return app

    return HttpServerActor(
        name=name,
        make_app=make_app,
        host=host,
        port=port,
        shutdown_timeout_s=max(1.0, resources.settings.supervisor.shutdown_timeout_s - 5),
        metrics=resources.metrics,
    )
