"""The one middleware around every request: id, limits, timeout, errors, metrics, logs, audit.

One layer rather than a stack of them keeps the per-request cost low (the
cached pages are served in microseconds). In order, for every request:

1. `X-Request-ID` taken if well-formed, else generated; bound to every log line
   of the request (structlog contextvars) and returned on the response.
2. Limits: URI length (414), total header bytes (431), declared body size (413).
3. The handler; for the routes that await the DB (audited ones and /ready), within
   API_REQUEST_TIMEOUT_S (else 503; enforced by one shared
   sweep, `deadlines.py`, at most 50 ms late); a 401 past its client's
   failure budget is answered late (`budget.py`).
4. Any error becomes an RFC 9457 problem: aiohttp's 404/405, our `ApiProblem`s,
   the DB being unreachable or too slow (503 + Retry-After), anything else
   (500, logged with its traceback through the redacting log chain, never sent).
5. Metrics by route template and exactly one log line (never headers, query
   strings or tokens): for audited routes the audit event, which carries the
   access-log fields (duration, bytes) too; for the others an `http_request`
   access line (probes at debug level).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Final

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from daemon.api.audit import Auditor, AuditRecord, first_forwarded
from daemon.api.budget import FailureBudget
from daemon.api.context import STATE, RequestState, request_id_from
from daemon.api.deadlines import Deadlines
from daemon.api.problems import ApiProblem, problem_response
from daemon.errors import CryptoError, DatabaseError, DatabaseUnavailable
from daemon.observability.logs import debug_enabled, get_logger
from daemon.observability.metrics import Metrics

__all__ = ("MAX_BODY_BYTES", "MAX_HEADER_BYTES", "MAX_URI_CHARS", "RETRY_AFTER_S", "make_middleware")

log = get_logger("customers_mngr.api")
access_log = get_logger("customers_mngr.access")

MAX_URI_CHARS: Final = 4096
MAX_HEADER_BYTES: Final = 16384
MAX_BODY_BYTES: Final = 16384
RETRY_AFTER_S: Final = "2"
CANCELLED_STATUS: Final = 499  # nginx's "client closed request": no response was sent
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNMATCHED: Final = "unmatched"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_middleware(
    *,
    metrics: Metrics,
    auditor: Auditor,
    audited: Collection[str],
    quiet: Collection[str],
    timeout_s: float,
    timed: Collection[str] = (),
    budget: FailureBudget | None = None,
    deadlines: Deadlines | None = None,
) -> Middleware:
    """`audited`: route names that emit audit events (which are also their access-log line); `quiet`: routes
    logged at debug (probes); `timed`: routes besides the audited ones that wait on I/O and so run within
    `timeout_s` (the others — /health, /metrics, the OpenAPI document, unmatched paths — await nothing that
    can hang, so they skip the timer); `budget`: each 401 is charged to its client, answered late past the
    client's budget; `deadlines`: where the timed routes' limits are registered (one shared sweep)."""
    limits = deadlines if deadlines is not None else Deadlines()
    audited_names = frozenset(audited)
    quiet_names = frozenset(quiet)
    timed_names = audited_names | frozenset(timed)
    # A concrete logger, built once: the lazy proxy re-creates one (with a stack walk) per call,
    # a cost paid on every request here. Logging is configured before any app is built.
    access = access_log.bind()
    # Bounded: route templates (plus "unmatched") x a fixed set of methods x the statuses we send.
    children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
    in_flight = metrics.api_in_flight
    bind, reset = structlog.contextvars.bind_contextvars, structlog.contextvars.reset_contextvars
    clock = time.perf_counter

    @web.middleware
    async def core(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = clock()
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        route = request.match_info.route
        resource = route.resource
        template = resource.canonical if resource is not None else _UNMATCHED
        name = route.name
        state = RequestState(request_id, AuditRecord() if name in audited_names else None)
        request[STATE] = state
        in_flight.inc()
        bound = bind(request_id=request_id)  # on every log line of the request, reset below
        try:
            try:
                response = await _guarded(
                    request, handler, request_id, timeout_s if name in timed_names else None, limits
                )
                if budget is not None and response.status == 401:
                    await budget.answer_late(request.remote)
            except BaseException:  # cancelled (shutdown cut the drain short): still one audit event
                if state.audit is not None:
                    auditor.emit(
                        state.audit,
                        endpoint=template,
                        method=request.method,
                        status=CANCELLED_STATUS,
                        request_id=request_id,
                        client=request.remote,
                        forwarded_for=None,
                        duration_ms=round((clock() - started) * 1000, 3),
                    )
                raise
            headers = response.headers
            headers["X-Request-ID"] = request_id
            headers["Server"] = "customers-mngr"
            headers["X-Content-Type-Options"] = "nosniff"
            status = response.status
            duration = clock() - started
            method = request.method if request.method in _METHODS else "other"
            series = children.get((template, method, status))
            if series is None:  # label look-ups lock and hash: resolve each combination once
                series = children[(template, method, status)] = (
                    metrics.api_requests.labels(route=template, method=method, status=str(status)),
                    metrics.api_request_duration.labels(route=template),
                )
            series[0].inc()
            series[1].observe(duration)
            if state.audit is not None:  # the audit event is this request's access-log line too
                auditor.emit(
                    state.audit,
                    endpoint=template,
                    method=method,
                    status=status,
                    request_id=request_id,
                    client=request.remote,
                    forwarded_for=first_forwarded(request.headers.get("X-Forwarded-For")),
                    duration_ms=round(duration * 1000, 3),
                    size=response.content_length,
                )
            elif name not in quiet_names or debug_enabled():
                (access.debug if name in quiet_names else access.info)(
                    "http_request",
                    method=method,
                    route=template,
                    status=status,
                    duration_ms=round(duration * 1000, 3),
                    bytes=response.content_length,
                    token_name=state.token_name,
                )
        finally:
            reset(**bound)
            in_flight.dec()
        return response

    return core


async def _guarded(
    request: web.Request, handler: Handler, request_id: str, timeout_s: float | None, limits: Deadlines
) -> web.StreamResponse:
    try:
        _check_limits(request)
        if timeout_s is None:
            return await handler(request)
        with limits.limit(timeout_s):  # as asyncio.timeout(timeout_s), without a timer per request
            return await handler(request)
    except ApiProblem as problem:
        return problem_response(problem, request_id=request_id)
    except web.HTTPException as exc:
        return problem_response(_from_http_exception(exc), request_id=request_id)
    except (DatabaseUnavailable, DatabaseError) as exc:
        # Unavailable is transient (warning); DatabaseError (rights, a schema this build does not
        # expect) needs an operator (error). Both are 503: /ready says the same to the balancer.
        level = log.warning if isinstance(exc, DatabaseUnavailable) else log.error
        level("api_database_unavailable", error=str(exc), error_type=type(exc).__name__)
        unavailable = ApiProblem(
            "unavailable",
            "the database is unreachable or too slow; retry shortly",
            headers={"Retry-After": RETRY_AFTER_S},
        )
        return problem_response(unavailable, request_id=request_id)
    except TimeoutError:
        log.warning("api_request_timed_out", timeout_s=timeout_s)
        timed_out = ApiProblem(
            "unavailable", "the request took too long; retry shortly", headers={"Retry-After": RETRY_AFTER_S}
        )
        return problem_response(timed_out, request_id=request_id)
    except CryptoError as exc:
        log.error("api_decrypt_failed", error=str(exc))
        return problem_response(ApiProblem("internal", "a stored value could not be read"), request_id=request_id)
    except Exception:
        log.exception("api_handler_failed")
        return problem_response(ApiProblem("internal", "unexpected error"), request_id=request_id)


def _check_limits(request: web.Request) -> None:
    if len(request.raw_path) > MAX_URI_CHARS:
        raise ApiProblem("uri-too-long", f"the request URI must be at most {MAX_URI_CHARS} characters")
    if sum(len(k) + len(v) + 4 for k, v in request.raw_headers) > MAX_HEADER_BYTES:
        raise ApiProblem("headers-too-large", f"the request headers must total at most {MAX_HEADER_BYTES} bytes")
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiProblem("request-too-large", f"the request body must be at most {MAX_BODY_BYTES} bytes")


def _from_http_exception(exc: web.HTTPException) -> ApiProblem:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allow = ", ".join(sorted(exc.allowed_methods))
        return ApiProblem("method-not-allowed", f"allowed: {allow}", headers={"Allow": allow})
    if exc.status == 404:
        return ApiProblem("not-found", "no such resource")
    if exc.status == 413:
        return ApiProblem("request-too-large", f"the request body must be at most {MAX_BODY_BYTES} bytes")
    if exc.status < 500:
        return ApiProblem("bad-request", "the request could not be understood")
    return ApiProblem("internal", "unexpected error")
