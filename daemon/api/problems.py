"""The API's errors: an exception any code below a handler raises, answered as a problem.

The problem types themselves (the stable list, its URIs and the response body)
live in daemon.http.problems, shared with what the HTTP layer answers before any
route runs; this module adds what only the API needs: `ApiProblem` with its
detail, rejected parameters and extra headers, and its response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from daemon.http.problems import PROBLEM_CONTENT_TYPE, PROBLEMS, ProblemType, render_problem

__all__ = (
    "PROBLEMS",
    "PROBLEM_CONTENT_TYPE",
    "ApiProblem",
    "InvalidParam",
    "ProblemType",
    "problem_response",
)


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
    return render_problem(
        problem.type,
        detail=problem.detail,
        request_id=request_id,
        invalid=[(p.name, p.reason) for p in problem.invalid],
        headers=problem.headers,
    )
