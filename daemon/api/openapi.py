"""The OpenAPI 3.1 document, generated from the route table, the problem types and the field policy.

Every route the app's router holds must have a description here (the build
fails otherwise) and every described route must exist. Each role's customer
schema is derived from the policy: exactly the fields that role sees, all of
them always present (null when the provider sent nothing), no others — so
a response carrying one field too many breaks the document.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from aiohttp import web

from daemon import __version__
from daemon.api.queries import SYNC_RUN_COLUMNS
from daemon.api.routes import API_ROUTES, RouteSpec
from daemon.config.http import ROLES, Role
from daemon.http.problems import PROBLEM_CONTENT_TYPE, PROBLEMS
from daemon.policy import FieldPolicy, Kind, View, revealed_classes, visible_fields

__all__ = ("build_openapi", "customer_schema", "documented_operations", "router_operations")

_REF: Final = "#/components/schemas/"
# Errors any operation can meet: the limits on the request itself, and a bug.
_COMMON_ERRORS: Final = (413, 414, 431, 500)
_AT_MOST_FOUR_DIGITS: Final = "^[^0-9]*(?:[0-9][^0-9]*){0,4}$"


def customer_schema(role: Role) -> dict[str, Any]:
    """The JSON Schema of one customer as `role` sees it."""
    properties = {f.name: _field_schema(f, view) for f, view in visible_fields(role)}
    schema: dict[str, Any] = {
        "type": "object",
        "description": f"A customer as the {role} role sees it (fields from the field policy).",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if role == "admin":
        properties["deleted_at"] = {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "When the customer disappeared from the provider; only with include_deleted=true.",
        }
    return schema


def _field_schema(f: FieldPolicy, view: View) -> dict[str, Any]:
    schema: dict[str, Any]
    if f.kind is Kind.ID:
        schema = {"type": "integer", "minimum": 0}
    elif f.kind is Kind.COUNT:
        schema = {"type": ["integer", "null"], "minimum": 0}
    elif f.kind is Kind.TIMESTAMP and view is View.CLEAR:
        schema = {"type": ["string", "null"], "format": "date-time"}
    else:
        schema = {"type": ["string", "null"]}
    if view is View.MASK:
        schema["pattern"] = _AT_MOST_FOUR_DIGITS
    how = {View.CLEAR: "stored value", View.MASK: "display mask, last four digits only", View.DECRYPT: "decrypted"}
    schema["description"] = f"{f.doc} ({f.classification.value}; {how[view]})"
    schema["x-classification"] = f.classification.value
    return schema


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {f"Customer_{role}": customer_schema(role) for role in ROLES}
    schemas["Customer"] = {
        "description": "A customer; which fields depends on the caller's role (see x-role-fields).",
        "oneOf": [{"$ref": f"{_REF}Customer_{role}"} for role in ROLES],
        "x-role-fields": {role: [f.name for f, _ in visible_fields(role)] for role in ROLES},
    }
    schemas["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details. Never carries a value from the request or the data.",
        "properties": {
            "type": {"type": "string", "enum": [p.uri for p in PROBLEMS.values()]},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "request_id": {"type": "string"},
            "invalid_params": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
                    "required": ["name", "reason"],
                },
            },
        },
        "required": ["type", "title", "status", "detail", "instance", "request_id"],
    }
    special: dict[str, Any] = {
        "id": {"type": "integer"},
        "started_at": {"type": "string", "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
        "status": {"type": "string"},
        "complete": {"type": "boolean"},
        "leader_epoch": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"], "description": "Why the run failed (value-free), else null."},
    }
    schemas["SyncRun"] = {
        "type": "object",
        "description": "One sync run; every other property is a record count of the run.",
        "properties": {name: special.get(name, {"type": "integer", "minimum": 0}) for name in SYNC_RUN_COLUMNS},
        "required": list(SYNC_RUN_COLUMNS),
        "additionalProperties": False,
    }
    return schemas


_HEADERS: Final = {
    "X-Request-ID": {
        "description": "The caller's X-Request-ID when well-formed, else a generated one.",
        "required": True,
        "schema": {"type": "string"},
    },
    "ETag": {"description": "Strong validator of viewer/analyst bodies.", "schema": {"type": "string"}},
    "Link": {
        "description": 'The next page: `<...>; rel="next"`; absent on the last page.',
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": "Bearer challenge.", "required": True, "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "required": True, "schema": {"type": "string"}},
    "Allow": {"description": "The methods the resource allows.", "schema": {"type": "string"}},
}


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in ("X-Request-ID", *names)}


def _problem_response(status: int) -> dict[str, Any]:
    titles = sorted({f"`{p.slug}`: {p.title}" for p in PROBLEMS.values() if p.status == status})
    headers = _header_refs(*(("WWW-Authenticate",) if status == 401 else ("Retry-After",) if status == 503 else ()))
    return {
        "description": "; ".join(titles),
        "headers": headers,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": f"{_REF}Problem"}}},
    }


def _success(spec: RouteSpec) -> dict[str, Any]:
    if spec.name == "clientes":
        schema: dict[str, Any] = {"type": "array", "items": {"$ref": f"{_REF}Customer"}}
        headers = _header_refs("ETag", "Link")
    elif spec.name == "cliente":
        schema, headers = {"$ref": f"{_REF}Customer"}, _header_refs("ETag")
    elif spec.name == "sync_runs":
        schema, headers = {"type": "array", "items": {"$ref": f"{_REF}SyncRun"}}, _header_refs()
    else:
        schema, headers = {"type": "object", "description": "This document."}, _header_refs()
    return {"description": "OK", "headers": headers, "content": {"application/json": {"schema": schema}}}


def _api_operation(spec: RouteSpec) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in sorted({*spec.statuses, *_COMMON_ERRORS}):
        if status == 200:
            responses["200"] = _success(spec)
        elif status == 304:
            responses["304"] = {
                "description": "Not modified: If-None-Match matched the current ETag.",
                "headers": _header_refs("ETag", "Link"),
            }
        else:
            responses[str(status)] = _problem_response(status)
    roles_text = ", ".join(spec.roles) if spec.roles else "public (no token)"
    revealed = {role: list(revealed_classes(role)) for role in spec.roles} if spec.audited else {}
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.summary,
        "description": f"{spec.description}\n\nRoles: {roles_text}."
        + (" Every call is audited." if spec.audited else ""),
        "security": [{"bearerToken": []}] if spec.roles else [],
        "parameters": [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "description": p.description + ("" if p.roles == ROLES else f" Roles: {', '.join(p.roles)}."),
                "schema": p.schema,
                **({"x-roles": list(p.roles)} if p.roles != ROLES else {}),
            }
            for p in spec.params
        ],
        "responses": responses,
        "x-roles": list(spec.roles),
    }
    if revealed:
        operation["x-revealed-classes"] = revealed
    return operation


_JSON_STATUS: Final = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "reasons": {"type": "array", "items": {"type": "string"}}},
    "required": ["status"],
}
_OPS: Final[dict[str, dict[str, Any]]] = {
    "/health": {
        "operationId": "health",
        "summary": "Liveness: 200 while the process serves; touches no dependency",
        "responses": {
            "200": {
                "description": "Alive",
                "headers": _header_refs(),
                "content": {"application/json": {"schema": _JSON_STATUS}},
            }
        },
    },
    "/ready": {
        "operationId": "ready",
        "summary": "Readiness: 200 when the DB answers and the schema is current, else 503 with the reasons",
        "responses": {
            "200": {
                "description": "Ready",
                "headers": _header_refs(),
                "content": {"application/json": {"schema": _JSON_STATUS}},
            },
            "503": {
                "description": "Not ready; `reasons` says why",
                "headers": _header_refs(),
                "content": {"application/json": {"schema": _JSON_STATUS}},
            },
        },
    },
    "/metrics": {
        "operationId": "metrics",
        "summary": "Prometheus metrics (text exposition format)",
        "responses": {
            "200": {
                "description": "The metrics",
                "headers": _header_refs(),
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    },
}


def _ops_operation(path: str, method: str) -> dict[str, Any]:
    base = _OPS[path]
    operation: dict[str, Any] = {
        **base,
        "security": [],
        "responses": {**base["responses"]} | {str(s): _problem_response(s) for s in _COMMON_ERRORS},
    }
    if method == "HEAD":
        operation["operationId"] = base["operationId"] + "_head"
        operation["summary"] = "Headers only of GET " + path
        operation["responses"] = {
            status: {k: v for k, v in response.items() if k != "content"}
            for status, response in operation["responses"].items()
        }
    return operation


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the app serves."""
    return {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource is not None}


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def build_openapi(operations: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The document for exactly these (METHOD, path) operations; unknown ones are an error."""
    specs = {(s.method, s.path): s for s in API_ROUTES}
    paths: dict[str, dict[str, Any]] = {}
    for method, path in sorted(operations):
        if (method, path) in specs:
            operation = _api_operation(specs[(method, path)])
        elif path in _OPS and method in ("GET", "HEAD"):
            operation = _ops_operation(path, method)
        else:
            raise RuntimeError(f"route {method} {path} has no OpenAPI description")
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "customers-mngr API",
            "version": __version__,
            "description": _info_description(),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from API_TOKENS: `Authorization: Bearer <token>`. "
                    "The predecessor's bare `Authorization: <token>` is accepted too.",
                }
            },
            "schemas": _schemas(),
            "headers": _HEADERS,
        },
    }


def _info_description() -> str:
    lines = [
        "Customer records by role. What each role sees comes from the field policy:",
        "",
        "| role | fields | sensitive classes revealed |",
        "|---|---|---|",
    ]
    for role in ROLES:
        fields = ", ".join(
            f"`{f.name}`" + (f" ({view.value})" if view is not View.CLEAR else "") for f, view in visible_fields(role)
        )
        lines.append(f"| {role} | {fields} | {', '.join(revealed_classes(role)) or 'none'} |")
    lines += [
        "",
        "Errors are RFC 9457 problem details (`application/problem+json`) with a stable `type`:",
        "",
        *(f"- `{p.uri}` ({p.status}): {p.title}" for p in PROBLEMS.values()),
        "",
        "The card verification code is never stored, so no role ever receives it.",
    ]
    return "\n".join(lines)
