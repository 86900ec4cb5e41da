"""Audit events (PCI DSS 10.2) and the access log: complete, one line per request, and free of secrets."""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from typing import Any

from daemon.api.audit import id_ranges
from daemon.config.process import LogSettings
from daemon.observability.logs import configure_logging
from tests.api.conftest import Api, Logs
from tests.api.support import TOKENS


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


async def test_audit_event_has_who_what_when_outcome_and_revealed_classes(api: Api, logs: Logs) -> None:
    """One event per data request with token name, role, endpoint, outcome, ids, classes, request id, client."""
    await api.get("/clientes?limit=3", "analyst", **{"X-Request-ID": "req-1"})
    await api.get("/clientes/2", "admin", **{"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
    await api.get("/clientes?limit=1000", "viewer")
    await api.get("/clientes/999999", "viewer")
    await api.get("/clientes?limit=0", "viewer")
    events = logs.audit()
    assert len(events) == 5
    analyst, admin, viewer_all, missing, bad = events
    assert analyst["token_name"] == "analyst-client" and analyst["role"] == "analyst"
    assert analyst["endpoint"] == "/clientes" and analyst["method"] == "GET"
    assert analyst["outcome"] == "allowed" and analyst["status"] == 200
    assert analyst["records"] == 3 and analyst["record_ids"] == "1-3"
    assert analyst["revealed"] == ["pci:mask"] and analyst["request_id"] == "req-1"
    assert analyst["client"] == "127.0.0.1" and analyst["timestamp"].endswith("Z")
    assert admin["endpoint"] == "/clientes/{id}" and admin["record_ids"] == "2"
    assert admin["revealed"] == ["financial", "pci:full", "pii"]
    assert admin["forwarded_for"] == "203.0.113.7"
    assert viewer_all["records"] == 250 and "record_ids" not in viewer_all, "ids only when at most 100"
    assert viewer_all["revealed"] == []
    assert missing["outcome"] == "not_found" and missing["records"] == 0
    assert bad["outcome"] == "rejected" and bad["status"] == 400
    assert all(e["level"] == "info" and e["logger"] == "audit" for e in events)
    counted = api.metrics.api_audit_events.labels(role="admin", revealed="pci:full")._value.get()
    assert counted == 1


def test_id_ranges_are_compact_and_exact() -> None:
    """Record ids are written as ranges that expand back to exactly the ids returned."""
    assert id_ranges([]) == ""
    assert id_ranges([7]) == "7"
    assert id_ranges([1, 2, 3, 5, 7, 8, 100]) == "1-3,5,7-8,100"


async def test_audit_is_never_filtered_by_log_level(api: Api) -> None:
    """With LOG_LEVEL=error the access log is silent but every audit event is still written."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="error", format="json"), stream=stream)
    for _ in range(5):
        await api.get("/clientes?limit=2", "viewer")
    await api.client.get("/clientes")
    text = stream.getvalue()
    assert text.count('"api_access"') == 6
    assert '"http_request"' not in text


async def test_one_log_line_per_request(api: Api, logs: Logs) -> None:
    """Audited routes write only their audit event, which carries the access fields (duration, bytes); other
    routes write an `http_request` line (method, route template, status, duration, bytes, token name); probes
    at debug."""
    await api.get("/clientes/42?include_deleted=false", "viewer", **{"X-Request-ID": "acc-1"})
    await api.get("/clientes?limit=0", "viewer", **{"X-Request-ID": "acc-2"})
    await api.client.get("/health")
    await api.client.get("/nope/4111111111111111")
    await api.client.get("/openapi.json")
    lines = logs.events()
    item, rejected = logs.audit()
    assert [e["request_id"] for e in lines if e["event"] in ("api_access", "http_request")][:2] == ["acc-1", "acc-2"]
    assert not [e for e in lines if e["event"] == "http_request" and e["request_id"] in ("acc-1", "acc-2")]
    assert item["method"] == "GET" and item["endpoint"] == "/clientes/{id}" and item["status"] == 200
    assert item["request_id"] == "acc-1" and item["token_name"] == "viewer-client"
    assert isinstance(item["duration_ms"], float) and item["bytes"] == len(
        await (await api.get("/clientes/42", "viewer")).read()
    )
    assert rejected["status"] == 400 and rejected["bytes"] > 0 and rejected["duration_ms"] >= 0
    access = logs.events("http_request")
    assert [a["route"] for a in access] == ["unmatched", "/openapi.json"], "probes are logged at debug only"
    unknown = access[0]
    assert unknown["status"] == 404 and unknown["token_name"] is None and unknown["bytes"] > 0
    assert isinstance(unknown["duration_ms"], float)


async def test_probes_are_logged_at_debug_level(api: Api) -> None:
    """With LOG_LEVEL=debug the probe routes get their access line too (and still one line per request)."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="debug", format="json"), stream=stream)
    await api.client.get("/health")
    await api.client.get("/metrics")
    await api.get("/clientes/1", "viewer")
    text = stream.getvalue()
    assert text.count('"http_request"') == 2 and text.count('"api_access"') == 1
    assert '"level":"debug"' in text


async def test_audit_is_complete_under_concurrent_load(api: Api, logs: Logs) -> None:
    """N concurrent audited requests of every outcome give exactly N audit events, one per request id."""
    paths = [
        ("/clientes?limit=5", "viewer"),
        ("/clientes/3", "analyst"),
        ("/clientes/4", "admin"),
        ("/clientes?limit=2", "admin"),
        ("/clientes/999999", "viewer"),
        ("/clientes?limit=0", "analyst"),
        ("/sync/runs", "viewer"),
        ("/clientes", None),
    ]
    rounds = 25

    async def one(index: int) -> int:
        path, role = paths[index % len(paths)]
        response = await api.get(path, role, **{"X-Request-ID": f"load-{index}"})
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(one(i) for i in range(rounds * len(paths))))
    events = [e for e in logs.audit() if e["request_id"].startswith("load-")]
    assert len(events) == len(statuses) == rounds * len(paths)
    assert {e["request_id"] for e in events} == {f"load-{i}" for i in range(len(statuses))}
    assert Counter(e["status"] for e in events) == Counter(statuses)
    assert set(statuses) == {200, 404, 400, 403, 401}
    assert not [e for e in logs.events("http_request") if e["request_id"].startswith("load-")]


async def test_no_token_header_or_card_number_in_logs(api: Api, logs: Logs, customers: list[dict[str, Any]]) -> None:
    """Across every kind of request, the captured logs hold no token, Authorization header or card value."""
    card = customers[9]["credit_card_num"]
    account = customers[9]["cuenta_numero"]
    for role, token in TOKENS.items():
        await api.get("/clientes?limit=20", role)
        await api.get("/clientes/10", role)
        await api.client.get("/clientes", headers={"Authorization": token})
        await api.get(f"/clientes?card_number={_digits(card)}", role)
        await api.get(f"/clientes?card_number={card}&limit=abc", role)
    for token in ("admin-token", "Bearer viewer-token", "Bearer wrong-secret-token-value", "just-a-guess-123"):
        await api.client.get("/sync/runs", headers={"Authorization": token})
    await api.client.get(f"/clientes/{_digits(card)}", headers={"Authorization": TOKENS["admin"]})
    await api.client.get(f"/x/{_digits(card)}", headers={"X-Request-ID": _digits(card)})
    text = logs.text
    assert logs.audit() and logs.events("http_request")
    for secret in (*TOKENS.values(), "admin-token", "viewer-token", "wrong-secret-token-value", "just-a-guess-123"):
        assert secret not in text, secret
    assert "authorization" not in text.lower() and "bearer" not in text.lower()
    for value in (card, _digits(card), _digits(card)[-8:], account):
        assert value not in text, value
