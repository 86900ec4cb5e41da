"""The real daemon, scraped: after one sync and a known set of requests, every counter moved by exactly
what happened, no label value came from a request or the data, the logs tell the story, and
`customers-mngr status` prints the same figures. Syncer-only mode is scraped on METRICS_PORT.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from daemon.api.routes import API_ROUTES
from daemon.config.crypto import KEY_ID_RE
from daemon.crypto.usage import ENCRYPTED_COLUMNS
from daemon.http.ops import OPS_ROUTES
from daemon.observability.metrics import (
    ANOMALIES,
    API_AUTH_FAILURE_REASONS,
    DB_ERROR_KINDS,
    PROVIDER_STATUS_CLASSES,
    RECORD_OUTCOMES,
    RETRY_REASONS,
    ROLES,
    RUN_STATUSES,
    SENSITIVE_CLASSES,
)
from daemon.observability.scrape import Scrape
from daemon.policy import revealed_classes
from daemon.provider.records import ParsedRecord, Rejected, parse_record
from tests.conftest import base_env
from tests.support.daemon_proc import DaemonProcess, free_port, http_get, wait_http
from tests.support.mysql import MysqlServer
from tests.support.simulator import Fault, Simulator, provider_env, threaded_simulator

pytestmark = pytest.mark.slow

P = "customers_mngr"
RECORDS, PAGE_SIZE, SEED, BAD_RATE = 95, 40, 7, 0.1  # pages of 40, 40, 15
CARD = "4111111111111111"
BAD_TOKEN = f"Bearer {CARD}"
WEIRD_REQUEST_ID = "obs-e2e-1"
# What a request may leave in a label: route templates, never a raw path.
ROUTES = {spec.path for spec in API_ROUTES} | set(OPS_ROUTES) | {"unmatched"}
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


# ---------------------------------------------------------------- helpers


def scrape(base: str) -> Scrape:
    status, body = http_get(f"{base}/metrics")
    assert status == 200
    return Scrape.parse(body.decode())


def wait_scrape(base: str, ready: Callable[[Scrape], bool], *, timeout: float = 60) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        current = scrape(base)
        if ready(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.2)


def by_labels(s: Scrape, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(x.labels.items())): x.value for x in s.samples(name)}


def deltas(before: Scrape, after: Scrape, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Per series of `name`, after - before, the unchanged ones left out."""
    old = by_labels(before, name)
    moved = {key: value - old.get(key, 0.0) for key, value in by_labels(after, name).items()}
    return {key: value for key, value in moved.items() if value}


def json_lines(output: bytes) -> list[dict[str, Any]]:
    lines = []
    for raw in output.decode(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


@dataclass(frozen=True)
class Served:
    """What the simulator served in the one snapshot, parsed as the syncer parses it."""

    valid: list[ParsedRecord]
    rejected: int
    anomalies: Counter[str]
    unknown_fields: int

    @classmethod
    def of(cls, sim: Simulator) -> Served:
        parsed = [parse_record(raw) for raw in sim.records()]
        valid = [p for p in parsed if isinstance(p, ParsedRecord)]
        anomalies = Counter(kind for p in valid for kind in p.anomalies if kind in ANOMALIES)
        return cls(
            valid=valid,
            rejected=sum(isinstance(p, Rejected) for p in parsed),
            anomalies=anomalies,
            unknown_fields=sum(p.unknown_fields for p in valid),
        )


def assert_label_values_fixed(s: Scrape) -> None:
    """Every label value of every customers_mngr series comes from a fixed set (or a validated key id)."""
    allowed: dict[tuple[str, str], Callable[[str], bool]] = {
        ("sync_runs_total", "status"): lambda v: v in RUN_STATUSES,
        ("sync_records_total", "outcome"): lambda v: v in RECORD_OUTCOMES,
        ("sync_anomalies_total", "kind"): lambda v: v in ANOMALIES,
        ("provider_requests_total", "status_class"): lambda v: v in PROVIDER_STATUS_CLASSES,
        ("provider_retries_total", "reason"): lambda v: v in RETRY_REASONS,
        ("api_requests_total", "route"): lambda v: v in ROUTES,
        ("api_requests_total", "method"): lambda v: v in METHODS,
        ("api_requests_total", "status"): lambda v: re.fullmatch(r"[1-5]\d\d", v) is not None,
        ("api_request_duration_seconds_bucket", "route"): lambda v: v in ROUTES,
        ("api_request_duration_seconds_count", "route"): lambda v: v in ROUTES,
        ("api_request_duration_seconds_sum", "route"): lambda v: v in ROUTES,
        ("api_auth_failures_total", "reason"): lambda v: v in API_AUTH_FAILURE_REASONS,
        ("http_requests_refused_total", "status"): lambda v: re.fullmatch(r"[45]\d\d", v) is not None,
        ("api_audit_events_total", "role"): lambda v: v in ROLES,
        ("api_audit_events_total", "revealed"): lambda v: v in SENSITIVE_CLASSES,
        ("db_pool_connections", "state"): lambda v: v in ("total", "in_use", "free", "max"),
        ("db_query_errors_total", "kind"): lambda v: v in DB_ERROR_KINDS,
        ("actor_up", "actor"): lambda v: v in ("api", "syncer", "probe", "provider-sim"),
        ("actor_restarts_total", "actor"): lambda v: v in ("api", "syncer", "probe", "provider-sim"),
        ("encrypted_values", "key_id"): lambda v: KEY_ID_RE.match(v) is not None,
    }
    for name in s.names():
        if not name.startswith(P + "_") or name.endswith("_created") or name == f"{P}_build_info":
            continue
        short = name[len(P) + 1 :]
        for sample in s.samples(name):
            for label, value in sample.labels.items():
                if label == "le":
                    float(value)
                    continue
                check = allowed.get((short, label))
                assert check is not None, f"{name} has an unexpected label {label}"
                assert check(value), f"{name}{{{label}={value!r}}} is not from its fixed set"


# ---------------------------------------------------------------- the daemon


@dataclass
class Running:
    base: str
    daemon: DaemonProcess
    sim: Simulator
    served: Served
    database: str
    env: dict[str, str]


@pytest.fixture
def running(mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path) -> Iterator[Running]:
    """`run --mode all` on an empty database, reading a simulator whose first answer is a 429."""
    database = fresh_db()
    port = free_port()
    with threaded_simulator(records=RECORDS, seed=SEED, bad_rate=BAD_RATE) as sim:
        served = Served.of(sim)
        sim.script(Fault(status=429, headers={"Retry-After": "1"}))
        env = {
            **base_env(mysql, database),
            **provider_env(sim.url, PROVIDER_PAGE_SIZE=str(PAGE_SIZE)),
            "API_PORT": str(port),
            "DEV_KEY_FILE": str(tmp_path / "keys.json"),
            "SYNC_INTERVAL_S": "3600",  # exactly one run during the test
        }
        with DaemonProcess(["run", "--mode", "all"], env, log_path=tmp_path / "daemon.log") as daemon:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/ready", proc=daemon.proc, timeout=60)
            yield Running(base=base, daemon=daemon, sim=sim, served=served, database=database, env=env)


def requests_to_make(first_id: int) -> list[tuple[str, str, Mapping[str, str], str, int | None]]:
    """(method, path, headers, expected route label, expected status or None when any status will do)."""
    viewer, analyst, admin = ({"Authorization": t} for t in ("viewer-token", "analyst-token", "Bearer admin-token"))
    return [
        ("GET", "/clientes", viewer, "/clientes", 200),
        ("GET", "/clientes?limit=5", {**viewer, "X-Request-ID": WEIRD_REQUEST_ID}, "/clientes", 200),
        ("GET", "/clientes?limit=5", analyst, "/clientes", 200),
        ("GET", f"/clientes/{first_id}", admin, "/clientes/{id}", 200),
        ("GET", "/clientes/987654321", admin, "/clientes/{id}", 404),
        ("GET", "/clientes", {}, "/clientes", 401),
        ("GET", "/clientes", {"Authorization": BAD_TOKEN}, "/clientes", 401),
        ("GET", "/sync/runs", viewer, "/sync/runs", 403),
        ("GET", "/sync/runs?limit=3", admin, "/sync/runs", 200),
        ("GET", "/clientes?limit=0", viewer, "/clientes", 400),
        ("GET", f"/no/such/{CARD}", viewer, "unmatched", 404),
        ("GET", "/clientes/..%2f..%2fetc%2fpasswd", admin, "/clientes/{id}", None),
        ("GET", f"/clientes/{'9' * 3000}", admin, "/clientes/{id}", None),
        ("GET", f"/clientes/{CARD}", {**admin, "X-Request-ID": CARD}, "/clientes/{id}", None),
        ("GET", "/openapi.json", {}, "/openapi.json", 200),
        ("DELETE", "/clientes", viewer, "unmatched", 405),  # aiohttp resolves no route for a 405
    ]


def send(base: str, method: str, path: str, headers: Mapping[str, str]) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(base + path, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


# ---------------------------------------------------------------- the tests


def test_counters_move_by_exactly_what_happened(running: Running, mysql: MysqlServer) -> None:
    """One sync and a known set of requests: every sync, provider, API, auth, audit and key series moved exactly."""
    served, base = running.served, running.base
    synced = wait_scrape(
        base, lambda s: s.total(f"{P}_sync_runs_total") == 1 and s.has(f"{P}_encrypted_values"), timeout=90
    )
    assert served.rejected > 0 and len(served.valid) > 0  # the scenario exercises both outcomes

    # --- the sync: records by outcome = what the simulator served
    assert synced.by(f"{P}_sync_records_total", "outcome") == {
        "inserted": len(served.valid),
        "updated": 0,
        "unchanged": 0,
        "rejected": served.rejected,
        "deleted": 0,
        "restored": 0,
    }
    assert synced.by(f"{P}_sync_runs_total", "status") == {"ok": 0, "partial": 1, "failed": 0}
    assert synced.total(f"{P}_sync_run_duration_seconds_count") == 1
    assert synced.by(f"{P}_sync_anomalies_total", "kind") == {k: served.anomalies.get(k, 0) for k in ANOMALIES}
    assert synced.total(f"{P}_sync_unknown_fields_total") == served.unknown_fields
    last_success = synced.value(f"{P}_sync_last_success_timestamp_seconds")
    assert last_success and last_success == synced.value(f"{P}_sync_last_run_timestamp_seconds")
    assert time.time() - 120 < last_success <= time.time()
    assert synced.value(f"{P}_sync_leader") == 1 and synced.total(f"{P}_sync_leader_changes_total") == 1
    assert synced.total(f"{P}_sync_skipped_runs_total") == 0
    # three pages answered 2xx, the scripted 429 before them was retried once
    assert synced.by(f"{P}_provider_requests_total", "status_class") == {
        "2xx": 3,
        "3xx": 0,
        "4xx": 1,
        "5xx": 0,
        "error": 0,
    }
    assert {k: v for k, v in synced.by(f"{P}_provider_retries_total", "reason").items() if v} == {"status_429": 1}
    assert synced.total(f"{P}_provider_request_duration_seconds_count") == 4
    # --- keys: the gauge equals the stored ciphertexts, all under the one development key
    counts = mysql.execute(
        "SELECT " + " + ".join(f"SUM({c} IS NOT NULL)" for c in ENCRYPTED_COLUMNS) + " FROM customers",
        database=running.database,
    )
    stored = int(counts[0][0])  # type: ignore[call-overload]
    key_values = synced.by(f"{P}_encrypted_values", "key_id")
    assert stored > 0 and len(key_values) == 1 and sum(key_values.values()) == stored
    assert synced.total(f"{P}_decrypt_failures_total") == 0
    # --- runtime and pool
    assert synced.by(f"{P}_actor_up", "actor") == {"api": 1, "syncer": 1}
    assert synced.total(f"{P}_actor_restarts_total") == 0
    assert synced.value(f"{P}_db_pool_connections", state="max") == 10
    assert synced.total(f"{P}_db_query_errors_total") == 0

    # --- the API: a known set of requests between two scrapes
    before = scrape(base)
    expected_requests: Counter[tuple[str, str, str]] = Counter({("/metrics", "GET", "200"): 1})  # `before` itself
    for method, path, headers, route, status in requests_to_make(served.valid[0].id):
        answered = send(base, method, path, headers)
        if status is not None:
            assert answered == status, (path, answered)
        expected_requests[(route, method, str(answered))] += 1
    after = scrape(base)
    moved = deltas(before, after, f"{P}_api_requests_total")
    assert {(dict(k)["route"], dict(k)["method"], dict(k)["status"]): v for k, v in moved.items()} == expected_requests
    durations = deltas(before, after, f"{P}_api_request_duration_seconds_count")
    routes = Counter[str]()
    for (route, _, _), n in expected_requests.items():
        routes[route] += n
    assert {dict(k)["route"]: v for k, v in durations.items()} == routes
    assert {dict(k)["reason"]: v for k, v in deltas(before, after, f"{P}_api_auth_failures_total").items()} == {
        "missing": 1,
        "unknown": 1,
        "forbidden": 1,
    }
    audit = {
        (dict(k)["role"], dict(k)["revealed"]): v
        for k, v in deltas(before, after, f"{P}_api_audit_events_total").items()
    }
    assert audit[("analyst", "pci:mask")] == 1
    for revealed in revealed_classes("admin"):
        assert audit[("admin", revealed)] == 1  # the one admin request that returned a customer
    assert after.value(f"{P}_api_requests_in_flight") == 1  # the scrape itself

    # --- no label value came from a request or the data
    assert_label_values_fixed(after)
    # Metric names and labels only: a sample value such as process_cpu_seconds_total 0.31999999999999995
    # would "contain" 999999999 by floating-point accident.
    body = http_get(f"{base}/metrics")[1].decode()
    text = "\n".join(line.rsplit(" ", 1)[0] for line in body.splitlines() if line and not line.startswith("#"))
    for planted in (CARD, "etc/passwd", "no/such", "999999999", "987654321", WEIRD_REQUEST_ID, "admin-token"):
        assert planted not in text, planted

    # --- the audit metric agrees with the audit log, event by event
    code, _ = running.daemon.stop()
    assert code == 0
    lines = json_lines(running.daemon.output)
    logged: Counter[tuple[str, str]] = Counter()
    for event in (line for line in lines if line.get("event") == "api_access" and line["role"] in ROLES):
        for revealed in event["revealed"] or ["none"]:
            logged[(event["role"], revealed)] += 1
    assert audit == dict(logged)


def test_logs_tell_the_story(running: Running) -> None:
    """One start and one summary line per run, the retry with its reason and wait, actor and request ids bound,
    no per-record line at info level, no planted secret."""
    served, base = running.served, running.base
    wait_scrape(base, lambda s: s.total(f"{P}_sync_runs_total") == 1 and s.has(f"{P}_encrypted_values"), timeout=90)
    for method, path, headers, _, _ in requests_to_make(served.valid[0].id)[:8]:
        send(base, method, path, headers)
    assert running.daemon.stop()[0] == 0
    output = running.daemon.output
    lines = json_lines(output)
    assert len(lines) == len([raw for raw in output.splitlines() if raw.strip()])  # every line is one JSON object

    started = [line for line in lines if line["event"] == "sync_run_started"]
    finished = [line for line in lines if line["event"] == "sync_run_finished"]
    assert len(started) == len(finished) == 1
    summary = finished[0]
    assert summary["status"] == "partial" and summary["level"] == "warning"  # quarantined records
    assert summary["inserted"] == len(served.valid) and summary["rejected"] == served.rejected
    assert summary["pages"] == 3 and summary["duration_s"] > 0
    assert {"updated", "unchanged", "deleted", "restored", "run_id"} <= set(summary)

    (retry,) = [line for line in lines if line["event"] == "provider_request_retried"]
    assert retry["reason"] == "status_429" and retry["wait_s"] == 0.05 and retry["level"] == "warning"

    sync_lines = [
        line for line in lines if line["logger"].startswith(("customers_mngr.syncer", "customers_mngr.provider"))
    ]
    assert sync_lines and all(line.get("actor") == "syncer" for line in sync_lines)
    # bounded: a handful of lines for the whole run, not one per record
    assert len(sync_lines) < 15 < RECORDS

    # One line per request: the 8 requests are all to audited routes, so each is its audit event, which
    # carries the access fields (routes that are not audited write an `http_request` line instead).
    access = [line for line in lines if line["event"] in ("http_request", "api_access")]
    assert len(access) == 8 and all(re.fullmatch(r"[0-9a-f]{32}|" + WEIRD_REQUEST_ID, a["request_id"]) for a in access)
    assert all(line["event"] == "api_access" and line["logger"] == "audit" for line in access)
    assert all(line.get("actor") == "api" and line["duration_ms"] >= 0 and line["bytes"] >= 0 for line in access)
    tagged = [line for line in lines if line.get("request_id") == WEIRD_REQUEST_ID]
    assert {line["event"] for line in tagged} == {"api_access"}
    text = output.decode()
    assert CARD not in text and "admin-token" not in text and "analyst-token" not in text


def test_status_prints_the_daemon_figures(running: Running) -> None:
    """`customers-mngr status` against the running daemon shows the same figures as its /metrics and /sync/runs."""
    served, base = running.served, running.base
    wait_scrape(base, lambda s: s.total(f"{P}_sync_runs_total") == 1 and s.has(f"{P}_encrypted_values"), timeout=90)
    for method, path, headers, _, _ in requests_to_make(served.valid[0].id)[:8]:
        send(base, method, path, headers)
    now = scrape(base)
    requests = sum(x.value for x in now.samples(f"{P}_api_requests_total") if x.labels["route"] != "/metrics")
    key_id, values = next(iter(now.by(f"{P}_encrypted_values", "key_id").items()))
    status = DaemonProcess(
        ["status", "--url", base, "--window", "0.5", "--runs", "3"],
        {"CUSTOMERS_MNGR_TOKEN": "admin-token", "SYNC_INTERVAL_S": "3600"},
    )
    assert status.wait(60) == 0
    out = status.output.decode()
    assert "api up (0 restarts) · syncer up (0 restarts)" in out
    assert "leader yes (1 leadership changes)" in out
    assert "runs since start: ok 0 · partial 1 · failed 0" in out
    assert (
        f"records: inserted {len(served.valid)} · updated 0 · unchanged 0 · rejected {served.rejected} "
        "· deleted 0 · restored 0"
    ) in out
    assert "requests: 2xx 3 · 4xx 1 · retries: status_429 1" in out
    assert re.search(r"last success \d+s ago \(.*, from this process\)", out) and "STALE" not in out
    assert re.search(r"now: 0\.00 req/s · 5xx 0\.00/s \(0\.0%\)", out)  # nothing but /metrics between the scrapes
    assert f"since start: {int(requests)} requests" in out
    assert "in flight 0 (besides this scrape)" in out
    assert "auth failures: missing 1 · unknown 1 · forbidden 1 · demo_refused 0" in out
    assert f"stored values by key id: {key_id} {int(values)}" in out
    row = r"\s1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\S+ m?s\s+partial"  # run 1 of the empty database
    assert re.search(rf"{row}\s+{len(served.valid)}\s+0\s+0\s+{served.rejected}\s+0\s+0", out), out
    assert "admin-token" not in out
    assert running.daemon.stop()[0] == 0


def test_syncer_only_mode_is_scraped_on_metrics_port(
    mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """`run --mode syncer` serves /metrics on METRICS_PORT with the sync figures; status reads it without an API."""
    port = free_port()
    with threaded_simulator(records=30, seed=3) as sim:
        served = Served.of(sim)
        env = {
            **base_env(mysql, fresh_db()),
            **provider_env(sim.url),
            "METRICS_PORT": str(port),
            "DEV_KEY_FILE": str(tmp_path / "keys.json"),
            "SYNC_INTERVAL_S": "3600",
        }
        with DaemonProcess(["run", "--mode", "syncer"], env) as daemon:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/ready", proc=daemon.proc, timeout=60)
            synced = wait_scrape(base, lambda s: s.total(f"{P}_sync_runs_total") == 1, timeout=90)
            assert synced.by(f"{P}_sync_records_total", "outcome")["inserted"] == len(served.valid) == 30
            assert synced.by(f"{P}_sync_runs_total", "status") == {"ok": 1, "partial": 0, "failed": 0}
            assert synced.by(f"{P}_actor_up", "actor") == {"syncer": 1, "probe": 1}
            assert synced.samples(f"{P}_api_requests_total") == []  # no API in this process
            assert_label_values_fixed(synced)
            status = DaemonProcess(["status", "--url", base, "--window", "0"], {"MODE": "syncer"})
            assert status.wait(60) == 0
            out = status.output.decode()
            assert "probe up (0 restarts) · syncer up (0 restarts)" in out
            assert "records: inserted 30 · updated 0" in out and "runs since start: ok 1" in out
            assert "api         not served by this process" in out
            assert daemon.stop()[0] == 0
