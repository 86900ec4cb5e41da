"""The API's routes as data: path, who may call it, whether it is audited, what it takes.

The app registers its handlers from this table and the OpenAPI document is
generated from it (plus the ops routes), so the two cannot drift; a test
checks the document against the app's router in both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from daemon.api.params import DEFAULT_LIMIT, MAX_LIMIT, RUNS_DEFAULT_LIMIT, RUNS_MAX_LIMIT
from daemon.config.http import ROLES, Role

__all__ = ("API_ROUTES", "ParamSpec", "RouteSpec", "route_by_name")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    where: str  # "query" or "path"
    schema: dict[str, object]
    description: str
    roles: tuple[Role, ...] = ROLES
    required: bool = False


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    method: str
    path: str
    roles: tuple[Role, ...]
    audited: bool
    summary: str
    description: str
    params: tuple[ParamSpec, ...] = ()
    statuses: tuple[int, ...] = ()


_INCLUDE_DELETED = ParamSpec(
    "include_deleted",
    "query",
    {"type": "boolean", "default": False},
    "Also return soft-deleted customers (each with `deleted_at`). Admin only: other roles get 403 for `true`.",
    roles=("admin",),
)

API_ROUTES: Final[tuple[RouteSpec, ...]] = (
    RouteSpec(
        name="clientes",
        method="GET",
        path="/clientes",
        roles=ROLES,
        audited=True,
        summary="A page of customers, ordered by id, with the fields the caller's role may see",
        description=(
            "The body is a JSON array of customer objects with the provider's field names. "
            'The next page is announced in `Link: <...>; rel="next"` (absent on the last page); '
            "follow it unchanged. Viewer and analyst pages carry a strong `ETag` and answer "
            "`If-None-Match` with 304 while the data is unchanged."
        ),
        params=(
            ParamSpec(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
                f"Customers per page, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT}).",
            ),
            ParamSpec(
                "cursor",
                "query",
                {"type": "string", "maxLength": 256, "pattern": "^[A-Za-z0-9_-]+$"},
                "Opaque position from the previous page's `Link` header. An altered cursor is a 400.",
            ),
            _INCLUDE_DELETED,
            ParamSpec(
                "card_number",
                "query",
                {"type": "string", "pattern": "^[0-9][0-9 -]{10,40}[0-9]$"},
                "Exact card number (12-19 digits; spaces or dashes between them are ignored), looked up "
                "through the blind index. Admin only: other roles get 403.",
                roles=("admin",),
            ),
        ),
        statuses=(200, 304, 400, 401, 403, 503),
    ),
    RouteSpec(
        name="cliente",
        method="GET",
        path="/clientes/{id}",
        roles=ROLES,
        audited=True,
        summary="One customer by id, with the fields the caller's role may see",
        description="404 when there is no such customer (or it is soft-deleted and `include_deleted` is not set).",
        params=(
            ParamSpec("id", "path", {"type": "integer", "minimum": 1}, "The provider's customer id.", required=True),
            _INCLUDE_DELETED,
        ),
        statuses=(200, 304, 400, 401, 403, 404, 503),
    ),
    RouteSpec(
        name="sync_runs",
        method="GET",
        path="/sync/runs",
        roles=("admin",),
        audited=True,
        summary="The latest sync runs, newest first (admin)",
        description="Read from the database, so it works in api-only mode too.",
        params=(
            ParamSpec(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": RUNS_MAX_LIMIT, "default": RUNS_DEFAULT_LIMIT},
                f"Runs to return, 1-{RUNS_MAX_LIMIT} (default {RUNS_DEFAULT_LIMIT}).",
            ),
        ),
        statuses=(200, 400, 401, 403, 503),
    ),
    RouteSpec(
        name="openapi",
        method="GET",
        path="/openapi.json",
        roles=(),
        audited=False,
        summary="This OpenAPI 3.1 document",
        description="Public: describes the API, serves no data.",
        statuses=(200,),
    ),
)

_BY_NAME: Final = {r.name: r for r in API_ROUTES}


def route_by_name(name: str) -> RouteSpec:
    return _BY_NAME[name]
