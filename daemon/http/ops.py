"""Ops routes every HTTP surface carries: liveness, readiness and the metrics exposition.

- `GET /health`: 200 while the process serves; touches nothing (liveness).
- `GET /ready`: 200 when the DB answers and the schema is at the version this
  build needs, else 503 with the reasons (load balancer target health).
- `GET /metrics`: Prometheus text format from the process's registry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon.db.database import Database
from daemon.db.migrate import schema_status
from daemon.errors import DaemonError
from daemon.observability.metrics import Metrics

__all__ = ("OPS_ROUTES", "Readiness", "add_ops_routes")

OPS_ROUTES = ("/health", "/ready", "/metrics")
_READY_TIMEOUT_S = 2.0
_HEALTHY = b'{"status": "ok"}'  # what json_response({"status": "ok"}) sends, encoded once


@dataclass(frozen=True, slots=True)
class Readiness:
    """Checks behind /ready; cheap enough for a load balancer polling every few seconds."""

    db: Database

    async def reasons(self) -> list[str]:
        try:
            async with asyncio.timeout(_READY_TIMEOUT_S):
                await self.db.fetch_value("SELECT 1")
                status = await schema_status(self.db)
        except (DaemonError, TimeoutError) as exc:
            return [f"database: {exc}" if str(exc) else "database: timed out"]
        if not status.ready:
            return [f"schema: at version {status.current}, this build needs {status.needed}"]
        return []


def add_ops_routes(app: web.Application, *, readiness: Readiness, metrics: Metrics) -> None:
    async def health(_request: web.Request) -> web.Response:
        return web.Response(body=_HEALTHY, content_type="application/json", charset="utf-8")  # same bytes each time

    async def ready(_request: web.Request) -> web.Response:
        reasons = await readiness.reasons()
        if reasons:
            return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics_handler(_request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/health", health, name="health")
    app.router.add_get("/ready", ready, name="ready")
    app.router.add_get("/metrics", metrics_handler, name="metrics")
