"""Error responses as RFC 9457 problem details (`application/problem+json`), for every HTTP surface.

Every error answered is one of `PROBLEMS`: a stable `type` URI (clients match
on it), a fixed `title`, the status, a value-free `detail`, the request id, and
for a bad parameter the parameter's name and what was expected — never the
value sent, a stack trace, SQL text or an internal message. The API raises them
(daemon.api.problems); the HTTP layer answers what aiohttp's parser refuses with
them too (daemon.http.refused); the OpenAPI document lists them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp import web

__all__ = ("PROBLEMS", "PROBLEM_CONTENT_TYPE", "ProblemType", "render_problem")

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
_TYPE_PREFIX: Final = "urn:customers-mngr:problem:"


@dataclass(frozen=True, slots=True)
class ProblemType:
    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        return _TYPE_PREFIX + self.slug


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


def render_problem(
    problem: ProblemType,
    *,
    detail: str,
    request_id: str,
    invalid: Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The response for one occurrence of `problem`. `instance` names it by request id: echoing
    the path or query back could copy a value someone put there (a card number) into more places."""
    body: dict[str, object] = {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
        "instance": f"urn:customers-mngr:request:{request_id}",
        "request_id": request_id,
    }
    if invalid:
        body["invalid_params"] = [{"name": name, "reason": reason} for name, reason in invalid]
    return web.Response(
        status=problem.status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )
