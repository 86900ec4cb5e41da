"""Errors: problem+json on every one, 404/405/400, limits, request ids, DB outages and timeouts."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import asyncmy
from aiohttp import ClientResponse

from daemon.api.app import ApiOptions
from daemon.config import Settings
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.observability.metrics import Metrics
from tests.api.conftest import Api, Logs, MakeApi
from tests.support.mysql import MysqlServer
from tests.support.tcp_proxy import TcpProxy

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


async def assert_problem(response: ClientResponse, status: int, slug: str) -> dict[str, Any]:
    """The RFC 9457 shape, the stable type, the request id, and nothing internal."""
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type=None)
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | {"invalid_params"}
    assert body["type"] == f"urn:customers-mngr:problem:{slug}"
    assert body["status"] == status and body["title"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    text = await response.text()
    for leak in ("Traceback", "SELECT", "asyncmy", 'File "', "customers_mngr", "Error:"):
        assert leak not in text, leak
    return body


async def test_unknown_route_is_a_404_problem(api: Api) -> None:
    """Any unknown path answers 404 problem+json, with or without a token."""
    for path in ("/nope", "/clientes/1/extra", "/sync", "/"):
        await assert_problem(await api.get(path, "admin"), 404, "not-found")
        await assert_problem(await api.client.get(path), 404, "not-found")


async def test_absent_customer_is_a_404_problem(api: Api) -> None:
    """/clientes/{id} of an id that does not exist is 404 for every role."""
    for role in ("viewer", "analyst", "admin"):
        await assert_problem(await api.get("/clientes/999999", role), 404, "not-found")


async def test_bad_id_is_a_400_problem(api: Api) -> None:
    """A non-numeric, zero or too large id is a 400 naming `id`."""
    for bad in ("abc", "0", "-1", "1.0", "99999999999999999999999"):
        body = await assert_problem(await api.get(f"/clientes/{bad}", "viewer"), 400, "invalid-parameter")
        assert body["invalid_params"][0]["name"] == "id"


async def test_wrong_method_is_a_405_problem_with_allow(api: Api) -> None:
    """POST/PUT/DELETE on a GET resource: 405 problem+json with an Allow header."""
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/clientes", "/clientes/1", "/sync/runs", "/openapi.json"):
            response = await api.client.request(method, path, headers={"Authorization": "admin-token"})
            await assert_problem(response, 405, "method-not-allowed")
            assert response.headers["Allow"] == "GET"


async def test_limits_on_uri_headers_and_body(api: Api) -> None:
    """A URI over 4096 characters (414), headers over 16 KiB (431), a body over 16 KiB (413)."""
    await assert_problem(await api.get("/clientes?cursor=" + "A" * 5000, "viewer"), 414, "uri-too-long")
    many = {f"X-Filler-{i}": "v" * 4000 for i in range(5)}
    await assert_problem(await api.get("/clientes", "viewer", **many), 431, "headers-too-large")
    big = await api.client.get(
        "/clientes", data=b"x" * 20000, headers={"Authorization": "viewer-token", "Content-Type": "text/plain"}
    )
    await assert_problem(big, 413, "request-too-large")


async def test_request_id_is_honoured_generated_and_returned_everywhere(api: Api, logs: Logs) -> None:
    """A well-formed X-Request-ID comes back and tags the logs; a bad one (or one hiding a card) is replaced."""
    response = await api.get("/clientes?limit=1", "viewer", **{"X-Request-ID": "abc-123.test:1"})
    assert response.headers["X-Request-ID"] == "abc-123.test:1"
    lines = [e for e in logs.events() if e.get("request_id") == "abc-123.test:1"]
    assert {e["event"] for e in lines} == {"api_access"}  # the audit event is the access line of audited routes
    for bad in ("has space", "x" * 200, "card-4111111111111111", "ü"):
        response = await api.get("/health", **{"X-Request-ID": bad})
        assert response.headers["X-Request-ID"] != bad
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    generated = set()
    for path in ("/health", "/nope", "/clientes", "/metrics", "/openapi.json"):
        response = await api.client.get(path)
        generated.add(response.headers["X-Request-ID"])
    assert len(generated) == 5


async def _proxied_db(make_settings: Callable[..., Settings], metrics: Metrics, name: str, proxy: TcpProxy) -> Any:
    settings = make_settings(name, port=proxy.port, DB_QUERY_TIMEOUT_S="3")
    return open_database(settings.db, metrics=metrics, create=False)


async def test_db_unreachable_is_a_503_and_the_api_recovers(
    *,
    make_api: MakeApi,
    make_settings: Callable[..., Settings],
    metrics: Metrics,
    api_db: Database,
    customers: object,
    mysql: MysqlServer,
    logs: Logs,
) -> None:
    """While the DB is cut off every data request is 503 (+Retry-After); once it is back, 200 again."""
    proxy = TcpProxy(mysql.host, mysql.port)
    await proxy.start()
    async with await _proxied_db(make_settings, metrics, api_db.name, proxy) as db:
        api = await make_api(db=db, options=ApiOptions(version_ttl_s=0.0))
        for role in ("viewer", "analyst", "admin"):
            assert (await api.get("/clientes", role)).status == 200
        await proxy.stop()
        for role in ("viewer", "analyst", "admin"):
            for path in ("/clientes", "/clientes/1"):
                response = await api.get(path, role)
                await assert_problem(response, 503, "unavailable")
                assert response.headers["Retry-After"].isdigit()
        assert (await api.client.get("/health")).status == 200
        assert (await api.client.get("/ready")).status == 503
        await proxy.start()
        for role in ("viewer", "analyst", "admin"):
            assert (await api.get("/clientes", role)).status == 200
        assert (await api.client.get("/ready")).status == 200
        await proxy.stop()
    outcomes = [e["outcome"] for e in logs.audit()]
    assert outcomes.count("error") == 6


async def test_slow_db_times_out_as_a_503(
    make_api: MakeApi, api_db: Database, customers: object, mysql: MysqlServer
) -> None:
    """A query stuck behind a table lock answers 503 within API_REQUEST_TIMEOUT_S, and the API recovers."""
    api = await make_api(API_REQUEST_TIMEOUT_S="0.5")
    locker = await asyncmy.connect(
        host=mysql.host, port=mysql.port, user=mysql.user, password=mysql.password, db=api_db.name
    )
    try:
        async with locker.cursor() as cur:
            await cur.execute("LOCK TABLES customers WRITE")
        started = asyncio.get_running_loop().time()
        response = await api.get("/clientes", "admin")
        await assert_problem(response, 503, "unavailable")
        assert asyncio.get_running_loop().time() - started < 5
        async with locker.cursor() as cur:
            await cur.execute("UNLOCK TABLES")
    finally:
        locker.close()
    assert (await api.get("/clientes", "admin")).status == 200


async def test_undecryptable_value_is_a_500_without_details(api: Api, logs: Logs) -> None:
    """A ciphertext that fails authentication gives admins a bare 500 problem; other roles are unaffected."""
    await api.db.execute("UPDATE customers SET cuenta_numero_enc = UNHEX(REPEAT('01', 40)) WHERE id = 3")
    body = await assert_problem(await api.get("/clientes?limit=5", "admin"), 500, "internal")
    assert "cuenta" not in str(body) and "key" not in body["detail"]
    assert (await api.get("/clientes?limit=5", "analyst")).status == 200
    assert logs.events("api_decrypt_failed")
