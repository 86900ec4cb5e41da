"""Authentication and roles: the role x endpoint x token matrix, demo tokens, audit of refusals."""

from __future__ import annotations

import base64
import os

import pytest

from daemon.config.http import DEMO_TOKENS
from tests.api.conftest import Api, Logs, MakeApi
from tests.api.support import TOKENS

ENDPOINTS = ("/clientes", "/clientes/1", "/sync/runs")
ALLOWED = {
    "viewer": {"/clientes", "/clientes/1"},
    "analyst": {"/clientes", "/clientes/1"},
    "admin": set(ENDPOINTS),
}


def _counter(api: Api, reason: str) -> float:
    return float(api.metrics.api_auth_failures.labels(reason=reason)._value.get())


async def test_role_endpoint_matrix(api: Api, logs: Logs) -> None:
    """Each role gets 200 where it may and 403 where it may not; each call is audited once."""
    calls = 0
    for role, allowed in ALLOWED.items():
        for path in ENDPOINTS:
            response = await api.get(path, role)
            calls += 1
            expected = 200 if path in allowed else 403
            assert response.status == expected, (role, path, await response.text())
            if expected == 403:
                body = await response.json()
                assert body["type"] == "urn:customers-mngr:problem:forbidden"
    audit = logs.audit()
    assert len(audit) == calls
    denied = [e for e in audit if e["outcome"] == "denied"]
    assert {(e["role"], e["endpoint"]) for e in denied} == {("viewer", "/sync/runs"), ("analyst", "/sync/runs")}
    assert all(e["token_name"] == f"{e['role']}-client" for e in audit)
    assert _counter(api, "forbidden") == 2


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_missing_or_unknown_token_is_401_with_bearer_challenge(api: Api, logs: Logs, path: str) -> None:
    """No token, an unknown one, an empty Bearer or an absurdly long one: 401 + WWW-Authenticate, audited."""
    cases = [None, "not-a-token", "Bearer not-a-token", "Bearer ", "x" * 600, "Basic dXNlcjpwYXNz"]
    for header in cases:
        headers = {} if header is None else {"Authorization": header}
        response = await api.client.get(path, headers=headers)
        assert response.status == 401, header
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.headers["Content-Type"] == "application/problem+json"
    audit = logs.audit()
    assert len(audit) == len(cases)
    assert all(e["outcome"] == "denied" and e["token_name"] is None and e["records"] == 0 for e in audit)
    assert _counter(api, "missing") == 1 and _counter(api, "unknown") == len(cases) - 1


async def test_bare_and_bearer_header_styles(api: Api) -> None:
    """The predecessor's bare `Authorization: <token>` and `Bearer <token>` (any case) both work."""
    for value in (TOKENS["viewer"], f"Bearer {TOKENS['viewer']}", f"bearer {TOKENS['viewer']}"):
        response = await api.client.get("/clientes", headers={"Authorization": value})
        assert response.status == 200, value


async def test_demo_tokens_work_in_development(api: Api, logs: Logs) -> None:
    """With APP_ENV=development the predecessor's three tokens map to their roles."""
    assert api.settings.app_env == "development"
    for token, role in DEMO_TOKENS.items():
        response = await api.get("/sync/runs", token=token)
        assert response.status == (200 if role == "admin" else 403)
        assert (await api.get("/clientes", token=token)).status == 200
    assert {e["token_name"] for e in logs.audit()} == {"demo-admin", "demo-analyst", "demo-viewer"}


async def test_demo_tokens_refused_in_production(make_api: MakeApi, customers: object, logs: Logs) -> None:
    """With APP_ENV=production the demo tokens are unknown tokens (401), counted as demo_refused."""
    keys = {
        "ENCRYPTION_KEYS": f'{{"p1": "{base64.b64encode(os.urandom(32)).decode()}"}}',
        "INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    api = await make_api(APP_ENV="production", MODE="api", **keys)
    assert api.settings.production
    for token in DEMO_TOKENS:
        for header in (token, f"Bearer {token}"):
            response = await api.get("/clientes", token=header)
            assert response.status == 401
    assert _counter(api, "demo_refused") == 6
    assert (await api.get("/clientes", "admin")).status == 200
    assert not logs.events("api_demo_tokens_enabled")


async def test_demo_tokens_warned_about_at_start(make_api: MakeApi, logs: Logs) -> None:
    """Building the app in development logs a warning that the demo tokens are accepted."""
    await make_api()
    warnings = logs.events("api_demo_tokens_enabled")
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"


async def test_ops_and_openapi_need_no_token(api: Api) -> None:
    """/health, /ready, /metrics and /openapi.json answer without a token."""
    for path in ("/health", "/ready", "/metrics", "/openapi.json"):
        response = await api.client.get(path)
        assert response.status == 200, path


async def test_no_tokens_in_production_is_warned_about(make_api: MakeApi, logs: Logs) -> None:
    """Production with an empty API_TOKENS logs a warning (every data request will be 401); development does not."""
    await make_api(API_TOKENS="[]")
    assert not logs.events("api_no_tokens_configured")
    keys = {
        "ENCRYPTION_KEYS": f'{{"p1": "{base64.b64encode(os.urandom(32)).decode()}"}}',
        "INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    api = await make_api(APP_ENV="production", MODE="api", API_TOKENS="[]", **keys)
    assert len(logs.events("api_no_tokens_configured")) == 1
    assert (await api.get("/clientes", token="admin-token")).status == 401
