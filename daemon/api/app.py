"""The customers API application: routes from the route table, the ops routes, one middleware.

`build_api_app()` is called by the api actor at every (re)start (an aiohttp
app freezes once it runs); the page cache and the version tracker live as
long as the app.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from aiohttp import web

from daemon.api.audit import Auditor
from daemon.api.auth import TokenStore
from daemon.api.budget import BudgetPolicy, FailureBudget
from daemon.api.cache import PageCache, VersionTracker
from daemon.api.cursor import CursorCodec
from daemon.api.deadlines import Deadlines
from daemon.api.handlers import CustomersApi
from daemon.api.keys import ApiKeys
from daemon.api.middleware import MAX_BODY_BYTES, make_middleware
from daemon.api.openapi import build_openapi, router_operations
from daemon.api.queries import RowDecrypting
from daemon.api.routes import API_ROUTES
from daemon.config.http import ApiSettings
from daemon.db.database import Database
from daemon.http.ops import Readiness, add_ops_routes
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics

__all__ = ("CUSTOMERS_API", "ApiKeyring", "ApiOptions", "build_api_app")

log = get_logger("customers_mngr.api")

_QUIET_ROUTES: Final = ("health", "ready", "metrics")
CUSTOMERS_API: Final = web.AppKey("customers_api", CustomersApi)


class ApiKeyring(Protocol):
    """What the API uses of `daemon.crypto.keyring.Keyring`."""

    def row_decryptor(self, columns: Sequence[str], *, table: str = ...) -> RowDecrypting: ...

    def blind_index(self, card_number: str) -> bytes: ...

    def content_hash(self, canonical: bytes) -> bytes: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiOptions:
    """Tuning with sensible defaults (tests shorten the version TTL)."""

    version_ttl_s: float = 0.5  # a sync's write is served at most this late
    cache_max_entries: int = 100_000  # the byte bound is what usually binds
    cache_max_bytes: int = 64 * 1024 * 1024
    auth_budget: BudgetPolicy = field(default_factory=BudgetPolicy)  # when a client's 401s are answered late


def build_api_app(
    *,
    db: Database,
    keyring: ApiKeyring,
    settings: ApiSettings,
    metrics: Metrics,
    options: ApiOptions | None = None,
) -> web.Application:
    options = options or ApiOptions()
    tokens = TokenStore(settings.tokens, demo_tokens=settings.demo_tokens)
    if tokens.demo_enabled:
        log.warning(
            "api_demo_tokens_enabled",
            detail="APP_ENV=development: the predecessor's three demo tokens are accepted (never in production)",
        )
    if not settings.tokens and not tokens.demo_enabled:
        log.warning("api_no_tokens_configured", detail="API_TOKENS is empty: every customer-data request gets 401")
    keys = ApiKeys.from_keyring(keyring)
    api = CustomersApi(
        db=db,
        decryptor=keyring,
        tokens=tokens,
        codec=CursorCodec(keys.cursor),
        etag_key=keys.etag,
        tracker=VersionTracker(db, ttl_s=options.version_ttl_s),
        cache=PageCache(max_entries=options.cache_max_entries, max_bytes=options.cache_max_bytes),
        metrics=metrics,
    )
    deadlines = Deadlines()
    middleware = make_middleware(
        metrics=metrics,
        auditor=Auditor(metrics),
        audited=[r.name for r in API_ROUTES if r.audited],
        quiet=_QUIET_ROUTES,
        timed=("ready",),
        timeout_s=settings.request_timeout_s,
        budget=FailureBudget(options.auth_budget),
        deadlines=deadlines,
    )
    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY_BYTES)
    app[CUSTOMERS_API] = api
    handlers = {"clientes": api.list_customers, "cliente": api.get_customer, "sync_runs": api.sync_runs}
    document: list[bytes] = []

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=document[0], content_type="application/json", headers={"Cache-Control": "no-cache"})

    for spec in API_ROUTES:
        handler = openapi if spec.name == "openapi" else handlers[spec.name]
        app.router.add_route(spec.method, spec.path, handler, name=spec.name)
    add_ops_routes(app, readiness=Readiness(db=db), metrics=metrics)

    async def build_document(app: web.Application) -> None:
        # After the router froze: the document describes exactly what is served, or the start fails.
        document.append(json.dumps(build_openapi(router_operations(app)), separators=(",", ":")).encode())

    async def stop_deadlines(_app: web.Application) -> None:
        deadlines.close()

    app.on_startup.append(build_document)
    app.on_cleanup.append(stop_deadlines)
    return app
