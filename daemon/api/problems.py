"""Error responses as RFC 9457 problem details (`application/problem+json`).

Every error the API answers is one of `PROBLEMS`: a stable `type` URI (clients
match on it), a fixed `title`, the status, a value-free `detail`, the request
id, and for a bad parameter the parameter's name and what was expected —
never the value sent, a stack trace, SQL text or an internal message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from daemon.http.refused import PROBLEM_TYPE_PREFIX

__all__ = (
    "PROBLEMS",
    "PROBLEM_CONTENT_TYPE",
    "ApiProblem",
    "InvalidParam",
    "ProblemType",
    "problem_response",
)

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug


# The complete, stable list. The OpenAPI document and the README are generated from it.
PROBLEMS: Final[Mapping[str, ProblemType]] = {
    p.slug: p
    for p in (
        ProblemType("invalid-parameter", 400, "A request parameter is invalid"),
        ProblemType("bad-request", 400, "The request is malformed"),
        ProblemType("unauthorized", 401, "Missing or unknown API token"),
        ProblemType("forbidden", 403, "The token's role may not do this"),
        ProblemType("not-found", 404, "No such resource"),
        ProblemType("method-not-allowed", 405, "Method not allowed on this resource"),
        ProblemType("request-too-large", 413, "The request body is too large"),
        ProblemType("uri-too-long", 414, "The request URI is too long"),
        ProblemType("headers-too-large", 431, "The request headers are too large"),
        ProblemType("internal", 500, "Internal error"),
        ProblemType("unavailable", 503, "The service cannot answer right now"),
    )
}


@dataclass(frozen=True, slots=True)
class InvalidParam:
    """One rejected parameter: its name and what it should have been (never the value sent)."""

    name: str
    reason: str


class ApiProblem(Exception):
    """Raised anywhere below a handler; the middleware turns it into a problem response."""

    def __init__(
        self,
        slug: str,
        detail: str,
        *,
        invalid: Sequence[InvalidParam] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.type = PROBLEMS[slug]
        self.detail = detail
        self.invalid = tuple(invalid)
        self.headers = dict(headers or {})
        super().__init__(f"{slug}: {detail}")

    @classmethod
    def invalid_param(cls, name: str, reason: str) -> ApiProblem:
        return cls("invalid-parameter", f"parameter {name!r} is invalid", invalid=[InvalidParam(name, reason)])


def problem_response(problem: ApiProblem, *, request_id: str) -> web.Response:
    """The response for `problem`. `instance` names the occurrence by request id: echoing the
    path or query back could copy a value someone put there (a card number) into more places."""
    body: dict[str, object] = {
        "type": problem.type.uri,
        "title": problem.type.title,
        "status": problem.type.status,
        "detail": problem.detail,
        "instance": f"urn:customers-mngr:request:{request_id}",
        "request_id": request_id,
    }
    if problem.invalid:
        body["invalid_params"] = [{"name": p.name, "reason": p.reason} for p in problem.invalid]
    headers = {"Cache-Control": "no-store", **problem.headers}
    return web.Response(
        status=problem.type.status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
