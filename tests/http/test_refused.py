"""What aiohttp's parser refuses is answered as a value-free problem, and logged without the input.

aiohttp's default quotes the start of the offending line in the body and in an
error-level traceback; a token at the start of an over-long Authorization
header would travel to both. These tests go through a real server socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from daemon.config.process import LogSettings
from daemon.http.problems import PROBLEMS
from daemon.http.server import HttpServerActor
from daemon.observability.logs import configure_logging
from daemon.observability.metrics import Metrics

SECRET = "tok_" + "9f2c" * 16  # what a real token looks like: it must never come back or be logged


@pytest.fixture
def logs() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=stream)
    return stream


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def _refused(metrics: Metrics) -> float:
    return float(metrics.http_refused.labels(status="400")._value.get())


@pytest.fixture
async def port(metrics: Metrics) -> AsyncIterator[int]:
    async def hello(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/", hello)
        return app

    actor = HttpServerActor(
        name="api", make_app=make_app, host="127.0.0.1", port=0, shutdown_timeout_s=1, metrics=metrics
    )
    task = asyncio.create_task(actor.run())
    await asyncio.wait_for(actor.listening.wait(), 10)
    assert actor.bound_port is not None
    try:
        yield actor.bound_port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _raw(port: int, head: str) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)  # the refusal closes the connection
    finally:
        writer.close()
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    "head",
    [
        f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}{'x' * 9000}\r\n\r\n",
        f"GET /?q={SECRET}{'x' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"G{SECRET}T / HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: x\r\nX-{SECRET}\r\n\r\n",
    ],
    ids=["long-authorization", "long-url", "bad-method", "header-without-colon"],
)
async def test_parser_refusal_is_a_problem_without_the_input(
    port: int, logs: io.StringIO, metrics: Metrics, head: str
) -> None:
    assert _refused(metrics) == 0
    status, headers, body = await _raw(port, head)
    assert _refused(metrics) == 1, "counted once, as customers_mngr_http_requests_refused_total{status='400'}"
    assert status == 400
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(body)
    assert problem["type"] == PROBLEMS["bad-request"].uri and problem["status"] == 400
    assert problem["request_id"] == headers["x-request-id"]
    assert SECRET not in body.decode() and "9f2c" not in body.decode()
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    refused = [line for line in lines if line["event"] == "http_request_refused"]
    assert len(refused) == 1 and refused[0]["status"] == 400 and refused[0]["level"] == "info"
    assert "9f2c" not in logs.getvalue(), "the refused input reached a log line"
    assert not any(line["level"] == "error" for line in lines), "a client's bad request is not a server error"


async def test_a_good_request_on_the_same_server_is_served(port: int, metrics: Metrics) -> None:
    status, _, body = await _raw(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 200 and json.loads(body) == {"ok": True}
    assert _refused(metrics) == 0
