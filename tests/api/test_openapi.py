"""The OpenAPI document: exactly the routes served, per-role fields from the policy, and schemathesis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from daemon.api.openapi import build_openapi, customer_schema, documented_operations, router_operations
from daemon.http.problems import PROBLEMS
from daemon.policy import visible_fields
from tests.api.conftest import Api
from tests.api.support import TOKENS

EXAMPLES_PER_OPERATION = 40


async def test_document_lists_exactly_the_routes_the_app_serves(api: Api) -> None:
    """Every (method, path) of the router is documented and every documented one is routed."""
    document = await api.json("/openapi.json", "viewer")
    assert document["openapi"].startswith("3.1")
    routed = router_operations(api.client.app)  # type: ignore[arg-type]
    assert routed == documented_operations(document)
    assert {("GET", "/clientes"), ("GET", "/clientes/{id}"), ("GET", "/sync/runs"), ("GET", "/openapi.json")} <= routed
    assert {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")} <= routed


def test_an_undocumented_route_fails_the_build() -> None:
    """Adding a route without describing it makes the document (and so the app start) fail."""
    with pytest.raises(RuntimeError, match="no OpenAPI description"):
        build_openapi([("GET", "/clientes"), ("GET", "/secret-export")])

    async def handler(_request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/clientes/{id}/card", handler)
    with pytest.raises(RuntimeError):
        build_openapi(router_operations(app))


def test_role_schemas_are_the_policy_projection() -> None:
    """Each role's schema has exactly its policy fields, all required, nothing else; no CVV anywhere."""
    for role in ("viewer", "analyst", "admin"):
        schema = customer_schema(role)
        names = [f.name for f, _ in visible_fields(role)]
        assert schema["required"] == names and schema["additionalProperties"] is False
        assert set(schema["properties"]) - set(names) <= ({"deleted_at"} if role == "admin" else set())
        assert "credit_card_ccv" not in schema["properties"]
    assert customer_schema("analyst")["properties"]["credit_card_num"]["pattern"]


async def test_document_describes_security_errors_and_roles(api: Api) -> None:
    """The bearer scheme, every problem type, per-role parameters and x-role-fields are there."""
    document = await api.json("/openapi.json", "viewer")
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    clientes = document["paths"]["/clientes"]["get"]
    assert clientes["security"] == [{"bearerToken": []}]
    assert {"200", "304", "400", "401", "403", "503"} <= set(clientes["responses"])
    params = {p["name"]: p for p in clientes["parameters"]}
    assert params["card_number"]["x-roles"] == ["admin"]
    assert document["paths"]["/sync/runs"]["get"]["x-roles"] == ["admin"]
    fields = document["components"]["schemas"]["Customer"]["x-role-fields"]
    assert fields["viewer"] == ["id", "user_name", "direccion", "avatar"]
    problem_types = document["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
    assert set(problem_types) == {p.uri for p in PROBLEMS.values()}
    assert clientes["x-revealed-classes"]["analyst"] == ["pci:mask"]


def _run_schemathesis(base_url: str, document: dict[str, Any], token: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.NEGATIVE and not operation.query and not operation.path_parameters:
                continue

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode))
            def check(case: Any) -> None:
                response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                case.validate_response(response, checks=checks)

            try:
                check()
            except Exception as exc:  # collect, so one report shows every operation that broke
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:2000]}")
    return failures


@pytest.mark.slow
@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
async def test_schemathesis_finds_no_5xx_and_no_response_breaking_the_document(api: Api, role: str) -> None:
    """Generated valid and invalid requests of every operation: no 5xx, every response matches the document."""
    await api.db.execute(
        "INSERT INTO sync_runs (started_at, finished_at, status, complete, pages, fetched, error) VALUES "
        "(NOW(6), NOW(6), 'ok', 1, 3, 250, NULL), (NOW(6), NULL, 'failed', 0, 1, 100, 'provider: timed out')"
    )
    document = await api.json("/openapi.json", role)
    base_url = str(api.client.make_url("")).rstrip("/")
    failures = await asyncio.wait_for(asyncio.to_thread(_run_schemathesis, base_url, document, TOKENS[role]), 120)
    assert not failures, "\n\n".join(failures)
