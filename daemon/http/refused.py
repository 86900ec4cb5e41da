"""The answer to a request aiohttp refuses before any application code runs.

aiohttp's HTTP parser rejects a request line or header over the size limits,
a bad method, a malformed header, and answers from
`RequestHandler.handle_error` — outside the app, its middlewares and signals
(aio-libs/aiohttp#3287: there is no public hook). Its default answer is a
`text/plain` body that **quotes up to 100 bytes of the offending line** back,
and a traceback at error level whose message quotes the same bytes: an
over-long `Authorization` header would put the start of a token in the body
and in the logs. So the servers here use a handler whose error answer is a
value-free problem (daemon.http.problems: `bad-request`, or the size type for
413/414/431) and one log line naming only the status, the parser's error class
and the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from daemon.http.problems import PROBLEMS, render_problem
from daemon.observability.logs import debug_enabled, get_logger

__all__ = ("use_problem_answers",)

log = get_logger("customers_mngr.http")

# What aiohttp's parser refuses, by the status it gives, as one of the problem types.
_REFUSALS: Final = {
    p.status: p for p in (PROBLEMS["request-too-large"], PROBLEMS["uri-too-long"], PROBLEMS["headers-too-large"])
}


class _ProblemRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, with a value-free answer to what it refuses itself."""

    def __init__(self, manager: web.Server, *, on_refused: Callable[[int], None] | None, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._on_refused = on_refused

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,  # aiohttp's text: it may quote what the client sent
    ) -> StreamResponse:
        request_id = uuid.uuid4().hex
        reason = type(exc).__name__ if exc is not None else None
        if status >= 500:
            # Not a parser refusal (the app's middleware answers its own errors): worth a trace,
            # but only at debug level, where the operator asked for detail.
            trace = exc if debug_enabled() else None
            log.error("http_request_failed", status=status, error_type=reason, exc_info=trace)
            problem, detail = PROBLEMS["internal"], "the request could not be answered"
        else:
            problem, detail = _REFUSALS.get(status, PROBLEMS["bad-request"]), "the server could not read the request"
            log.info("http_request_refused", status=problem.status, reason=reason, client=request.remote)
            if self._on_refused is not None:
                self._on_refused(problem.status)
        if request.writer.output_size > 0:  # part of an answer went out already: nothing else can
            raise ConnectionError("response already started; closing the connection")
        response = render_problem(problem, detail=detail, request_id=request_id, headers={"X-Request-ID": request_id})
        response.force_close()
        return response


class _ProblemServer(web.Server):
    on_refused: Callable[[int], None] | None = None  # set by use_problem_answers (no __init__ runs)

    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, on_refused=self.on_refused, **self._kwargs)


def use_problem_answers(runner: web.AppRunner, *, on_refused: Callable[[int], None] | None = None) -> None:
    """After `runner.setup()`, before any site starts: connections get the problem handler.

    The runner built a plain `web.Server`; its class is swapped for a subclass that only
    changes which protocol object each new connection gets (its one attribute: the hook). A test
    sends an over-long header through a real server, so an aiohttp upgrade that changes
    this plumbing fails the suite instead of silently restoring the quoting answer.
    """
    server = runner.server
    if server is None:
        raise RuntimeError("use_problem_answers() needs runner.setup() first")
    server.__class__ = _ProblemServer
    assert isinstance(server, _ProblemServer)  # for the type checker: it is one now
    server.on_refused = on_refused  # called with the status of each refusal (a metric)
