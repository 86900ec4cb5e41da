"""Scenario 7 — hostile HTTP input against the real API process (production settings)."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability.harness import (
    ROLES,
    Daemon,
    LoadRun,
    RecordingSimulator,
    Suite,
    ports,
    query,
    scalar,
    soak,
    timed,
)
from tests.reliability.report import Report, Scenario
from tests.support.daemon_proc import DaemonProcess
from tests.support.mysql import MysqlServer
from tests.support.simulator import threaded_simulator

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(3600 if soak() else 300)]

BAD_TOKEN_PREFIX = "badtok-"
BAD_TOKENS = 3000
FLOOD_ROUNDS = 3
FLOOD_CONNECTIONS = 200
FLOOD_RATE_BOUND = FLOOD_CONNECTIONS * 1.25 + 20  # past the budget, each connection gets one 401 a second
SLOWDOWN_BOUND = (
    3.0  # valid clients' median latency and rate during the flood vs alone: generous, the machine is shared
)
RECORDS = 300

SQL_INJECTION = (
    "' OR '1'='1",
    "1 OR 1=1",
    "1; DROP TABLE customers; --",
    "1' UNION SELECT credit_card_num_enc, cuenta_numero_enc FROM customers --",
    '" OR ""="',
    "1)) OR SLEEP(3)#",
    "1 AND (SELECT 1 FROM (SELECT SLEEP(3))x)",
    "admin'--",
    "' ; SELECT LOAD_FILE('/etc/passwd') --",
    "0x31",
    "-1",
    "1e3",
    "99999999999999999999999",
    "NULL",
    "\x00",
    "1%00",
    "true' OR 'x'='x",
    "%27%20OR%201%3D1",
)
PATH_TRAVERSAL = (
    "../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "..\\..\\windows\\win.ini",
    "/etc/passwd%00",
    "%252e%252e%252f",
    "file:///etc/passwd",
)
ODD = ("\r\nX-Injected: 1", "\u202egnp.exe", "ß" * 300, "{{7*7}}", "${jndi:ldap://127.0.0.1/x}", " " * 50)
RAW_PATHS = (
    "/clientes/../../etc/passwd",
    "/clientes/..%2f..%2fetc%2fpasswd",
    "/clientes/%2e%2e/%2e%2e/etc/passwd",
    "/../../../../etc/passwd",
    "/static/../../daemon/__init__.py",
    "/clientes/1/../../sync/runs",
    "//clientes",
    "/clientes%00",
    "/clientes/1%27%20OR%201=1",
    "/clientes/1;DROP%20TABLE%20customers",
    "/openapi.json/..%2f..%2f.dev-keys.json",
    "/.dev-keys.json",
    "/.env",
)

ASSERTS = (
    "`run --mode api` with APP_ENV=production (demo tokens refused) over customers written by the real syncer. "
    "Asserted: schemathesis (positive and negative generation, every operation of /openapi.json, each role and "
    "no token) finds no 5xx and no answer outside the document; oversized URIs, query values, header sets, "
    "single headers and bodies, SQL injection and path traversal strings in every parameter of every operation "
    "and in raw paths, and malformed cursors all get a 4xx problem+json (never quoting the input), quickly, and "
    "leave the tables as they were; thousands of random bad tokens in several header styles all get 401 while "
    "valid clients keep being served with no error; the daemon logs no 5xx and stays up."
)


def test_hostile_http_input_gets_4xx_and_never_hurts_the_service(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """schemathesis per role, oversized input, injections, bad cursors and a bad-token flood: no 5xx, all 401s."""
    figures = report.scenario(7, "Hostile HTTP input", ASSERTS)
    database = fresh_db()
    suite.extra_needles.append(BAD_TOKEN_PREFIX)
    sim = RecordingSimulator(suite.needles, records=RECORDS, seed=707)
    with threaded_simulator(sim):
        seed_env = suite.env(mysql, database, PROVIDER_URL=sim.url, PROVIDER_PAGE_SIZE="100")
        seeder = DaemonProcess(["sync", "--once"], seed_env, log_path=suite.logs("s7") / "sync-once.log")
        assert seeder.wait(120) == 0, seeder.output.decode(errors="replace")[-2000:]
    env = suite.env(mysql, database, **ports("API_PORT"), APP_ENV="production")
    env.pop("ENCRYPTION_ACTIVE_KEY")
    tables_before = _table_contents(mysql, database)
    with suite.daemon("s7", "api", ["run", "--mode", "api"], env) as daemon:
        daemon.wait_ready()
        document = json.loads(daemon.get("/openapi.json")[1])
        seconds: dict[str, float] = {}
        with timed() as t:
            fuzz = _schemathesis(daemon, document, suite)
        seconds["schemathesis"] = t()
        with timed() as t:
            oversized = _oversized(daemon, suite)
            injected = _injections(daemon, document, suite)
            cursors = _cursors(daemon, suite)
        seconds["oversized, injections, cursors"] = t()
        with timed() as t:
            flood = _bad_token_flood(daemon, suite, tmp_path)
        seconds["bad-token flood"] = t()
        still_ready = daemon.get("/ready")[0] == 200
        # audited routes log their status on the audit event (their only line), the others on http_request
        logged = daemon.events("http_request") + daemon.events("api_access")
        server_5xx = [e for e in logged if int(e.get("status", 0)) >= 500]
        code, _ = daemon.stop()
    tables_after = _table_contents(mysql, database)
    suite.dump(mysql, database, "s7")
    _report(figures, fuzz=fuzz, oversized=oversized, injected=injected, cursors=cursors, flood=flood)
    figures.rows = "tables unchanged" if tables_before == tables_after else "tables CHANGED"
    figures.note(
        daemon_5xx_logged=len(server_5xx),
        tables_unchanged=tables_before == tables_after,
        seconds_by_part={k: round(v, 1) for k, v in seconds.items()},
    )

    assert fuzz["calls"] > 0, "schemathesis generated no request"
    assert not fuzz["failures"], "\n\n".join(fuzz["failures"])
    for name, part in (("oversized", oversized), ("injection", injected), ("cursor", cursors)):
        assert not part["bad"], f"{name}: {part['bad'][:10]}"
    assert flood["bad_unexpected"] == 0 and flood["bad_requests"] >= 2000, flood
    assert flood["valid_errors"] == 0, flood
    assert flood["bad_rps"] <= FLOOD_RATE_BOUND, "the failure budget holds a flood to its connections' pace"
    assert flood["valid_slowdown"] <= SLOWDOWN_BOUND and flood["valid_rate_drop"] <= SLOWDOWN_BOUND, flood
    assert not server_5xx and still_ready and code == 0
    assert tables_before == tables_after, "hostile input changed the tables"
    figures.passed()


# --- helpers ------------------------------------------------------------------------------------


def _table_contents(mysql: MysqlServer, database: str) -> dict[str, tuple[int, int]]:
    """Rows and content checksum of every table: an injected UPDATE changes the second."""
    tables = [str(r[0]) for r in query(mysql, database, "SHOW TABLES")]
    return {
        t: (
            int(scalar(mysql, database, f"SELECT COUNT(*) FROM `{t}`")),
            int(str(query(mysql, database, f"CHECKSUM TABLE `{t}`")[0][1] or 0)),
        )
        for t in tables
    }


def _raw(
    daemon: Daemon, path: str, headers: Mapping[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes, float]:
    """One request with the exact path and headers given (no normalization); status -1 if the connection broke."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=15)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return response.status, dict(response.getheaders()), data, time.monotonic() - started
    except (OSError, http.client.HTTPException):
        return -1, {}, b"", time.monotonic() - started
    finally:
        conn.close()


def _judge(status: int, headers: Mapping[str, str], data: bytes, elapsed: float, allowed: set[int]) -> str | None:
    """Why an answer to hostile input is wrong (None when it is fine)."""
    if status < 0:
        return "connection broken"
    if status >= 500:
        return f"status {status}"
    if status not in allowed:
        return f"status {status} not in {sorted(allowed)}"
    if elapsed > 2.5:
        return f"took {elapsed:.1f} s"
    if status >= 400:
        if not headers.get("Content-Type", "").startswith("application/problem+json"):
            return f"status {status} answered as {headers.get('Content-Type')!r}, not a problem"
        text = data.decode("utf-8", "replace")
        for leak in ("Traceback", "SELECT", "asyncmy", 'File "', "etc/passwd", "root:"):
            if leak in text:
                return f"problem body shows {leak!r}"
    return None


def _schemathesis(daemon: Daemon, document: dict[str, Any], suite: Suite) -> dict[str, Any]:
    examples = 150 if soak() else 30
    schema = schemathesis.openapi.from_dict(document)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    failures: list[str] = []
    calls = Counter[str]()
    for who in (*ROLES, "no token"):
        headers = suite.secrets.header(who) if who in ROLES else {}
        # Without a token every protected answer is the same 401, and past the client's failure budget
        # each takes a second: a few examples per operation prove the 401s conform.
        per_operation = examples if who in ROLES else 8
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.NEGATIVE and not operation.query and not operation.path_parameters:
                    continue

                check = _property(
                    operation,
                    mode,
                    examples=per_operation,
                    base=daemon.base,
                    headers=headers,
                    checks=checks,
                    count=lambda who=who: calls.update([who]),
                )
                try:
                    check()
                except Exception as exc:  # collect every operation that broke, then fail once
                    failures.append(f"{who} {operation.label} [{mode.value}]: {str(exc)[:1500]}")
    return {"calls": sum(calls.values()), "by_role": dict(calls), "failures": failures}


def _property(
    operation: Any,
    mode: GenerationMode,
    *,
    examples: int,
    base: str,
    headers: dict[str, str],
    checks: list[Any],
    count: Callable[[], None],
) -> Callable[[], None]:
    """One hypothesis property: generated requests of `operation`, each answer validated against the document."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def check(case: Any) -> None:
        response = case.call(base_url=base, headers=headers, timeout=15)
        count()
        case.validate_response(response, checks=checks)

    return check  # type: ignore[no-any-return]


def _oversized(daemon: Daemon, suite: Suite) -> dict[str, Any]:
    auth = suite.secrets.header("viewer")
    token = suite.secrets.tokens["viewer"]
    cases: list[tuple[str, str, dict[str, str], bytes | None, set[int]]] = [
        ("URI of 5000 characters", "/clientes/" + "1" * 5000, auth, None, {414}),
        ("query value of 3900 characters", "/clientes?cursor=" + "A" * 3900, auth, None, {400}),
        ("URI of 9000 characters (over the parser's line)", "/clientes?cursor=" + "A" * 9000, auth, None, {400, 414}),
        ("URI of 100000 characters", "/clientes?limit=" + "9" * 100_000, auth, None, {400, 414}),
        (
            "headers totalling 40 KiB",
            "/clientes",
            {**auth, **{f"X-Fill-{i}": "v" * 4000 for i in range(10)}},
            None,
            {400, 431},
        ),
        ("one header of 9000 bytes", "/clientes", {**auth, "X-Big": "v" * 9000}, None, {400, 431}),
        (
            # A real token first: the parser's refusal must not echo or log it (scenario 9 searches).
            "Authorization of 10000 bytes",
            "/clientes",
            {"Authorization": auth["Authorization"] + "t" * 10000},
            None,
            {400, 401, 431},
        ),
        ("200 headers", "/clientes", {**auth, **{f"X-H{i}": "v" for i in range(200)}}, None, {400, 431, 200}),
        ("1000 query parameters", "/clientes?" + "&".join(f"p{i}=1" for i in range(1000)), auth, None, {400, 414}),
        ("repeated limit", "/clientes?limit=1&limit=2", auth, None, {400}),
        ("body of 20 KiB", "/clientes", {**auth, "Content-Type": "text/plain"}, b"x" * 20_000, {413}),
        ("limit of 10^30", "/clientes?limit=" + "1" + "0" * 30, auth, None, {400}),
        ("id of 10^40", "/clientes/1" + "0" * 40, auth, None, {400}),
        ("request id of 1000 characters", "/clientes/1", {**auth, "X-Request-ID": "r" * 1000}, None, {200}),
    ]
    bad: list[str] = []
    statuses: Counter[int] = Counter()
    for name, path, headers, body, allowed in cases:
        status, got, data, elapsed = _raw(daemon, path, headers, body)
        statuses[status] += 1
        if (why := _judge(status, got, data, elapsed, allowed)) is not None:
            bad.append(f"{name}: {why}")
        if token in data.decode("utf-8", "replace"):
            bad.append(f"{name}: the answer quotes the token")
    return {"requests": len(cases), "statuses": dict(statuses), "bad": bad}


def _operations(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], set[int]]]:
    out = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        params = [*item.get("parameters", []), *operation.get("parameters", [])]
        statuses = {int(s) for s in operation["responses"] if s.isdigit()}
        out.append((path, params, statuses))
    return out


def _injections(daemon: Daemon, document: dict[str, Any], suite: Suite) -> dict[str, Any]:
    payloads = (*SQL_INJECTION, *PATH_TRAVERSAL, *ODD)
    bad: list[str] = []
    statuses: Counter[int] = Counter()
    sent = 0
    for role in ("admin", "viewer"):
        auth = suite.secrets.header(role)
        for path, params, documented in _operations(document):
            allowed = documented | {400, 404}
            for param in params:
                for payload in payloads:
                    value = quote(payload, safe="")
                    if param["in"] == "path":
                        target = path.replace("{" + param["name"] + "}", value)
                    else:
                        filled = path.replace("{id}", "1")
                        target = f"{filled}?{quote(param['name'])}={value}"
                    status, got, data, elapsed = _raw(daemon, target, auth)
                    sent += 1
                    statuses[status] += 1
                    if (why := _judge(status, got, data, elapsed, allowed)) is not None:
                        bad.append(f"{role} {path} {param['name']}={payload!r}: {why}")
        for raw_path in RAW_PATHS:
            status, got, data, elapsed = _raw(daemon, raw_path, auth)
            sent += 1
            statuses[status] += 1
            if (why := _judge(status, got, data, elapsed, {400, 404})) is not None:
                bad.append(f"{role} raw {raw_path}: {why}")
    return {"requests": sent, "statuses": dict(statuses), "bad": bad}


def _cursors(daemon: Daemon, suite: Suite) -> dict[str, Any]:
    auth = suite.secrets.header("viewer")
    status, headers, _, _ = _raw(daemon, "/clientes?limit=10", auth)
    assert status == 200
    link = headers.get("Link", "")
    valid = link[link.index("cursor=") + 7 : link.index(">")]
    flipped = valid[:10] + ("A" if valid[10] != "A" else "B") + valid[11:]
    forged = base64.urlsafe_b64encode(json.dumps({"after": 0, "include_deleted": True}).encode()).decode()
    cases = [
        "",
        "x",
        "=" * 20,
        valid[:-1],
        valid[:-4],
        valid + "A",
        valid + valid,
        flipped,
        valid[::-1],
        forged,
        base64.urlsafe_b64encode(b"\x00" * 64).decode(),
        base64.urlsafe_b64encode(bytes(range(256))).decode(),
        "%" * 10,
        "' OR 1=1 --",
        "A" * 1000,
        quote("\x00\x01\x02", safe=""),
    ]
    bad: list[str] = []
    statuses: Counter[int] = Counter()
    for role in ("viewer", "admin"):
        for cursor in cases:
            status, got, data, elapsed = _raw(
                daemon, f"/clientes?limit=10&cursor={quote(cursor, safe='%')}", suite.secrets.header(role)
            )
            statuses[status] += 1
            if (why := _judge(status, got, data, elapsed, {400})) is not None:
                bad.append(f"{role} cursor {cursor[:20]!r}: {why}")
    ok_status, _, _, _ = _raw(daemon, f"/clientes?limit=10&cursor={valid}", auth)
    if ok_status != 200:
        bad.append(f"the valid cursor answered {ok_status}")
    return {"requests": sum(statuses.values()) + 1, "statuses": dict(statuses), "bad": bad}


def _valid_mix(suite: Suite) -> list[dict[str, Any]]:
    h = suite.secrets.header
    return [
        {"name": "viewer page", "path": "/clientes?limit=50", "headers": h("viewer"), "ok": [200, 304], "etag": True},
        {"name": "analyst item", "path": "/clientes/{id}", "headers": h("analyst"), "ok": [200, 304]},
        {"name": "admin item", "path": "/clientes/{id}", "headers": h("admin"), "ok": [200]},
    ]


def _bad_token_flood(daemon: Daemon, suite: Suite, work_dir: Path) -> dict[str, Any]:
    """Valid clients alone, then the same clients during a burst of random bad tokens, three times.

    The machine is shared: another process's burst of CPU can land in any window. The flood
    cannot make valid clients faster, so the best of the three pairs is what the flood itself
    costs them; every pair is reported.
    """
    window = 4.0
    per_flood = BAD_TOKENS // FLOOD_ROUNDS
    flood_mix = [{"name": "bad token", "path": "/clientes?limit=10", "bad_token": BAD_TOKEN_PREFIX, "ok": [401]}]

    def valid_run(name: str) -> LoadRun:
        return LoadRun(
            suite, "s7", name, base=daemon.base, connections=8, duration_s=window, mix=_valid_mix(suite),
            work_dir=work_dir, item_range=(1, RECORDS),
        )  # fmt: skip

    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    floods: list[dict[str, Any]] = []
    for n in range(FLOOD_ROUNDS):
        with valid_run(f"valid-alone-{n}") as alone:
            baseline = alone.result()
        with LoadRun(
            suite, "s7", f"bad-tokens-{n}", base=daemon.base, connections=FLOOD_CONNECTIONS, duration_s=60,
            mix=flood_mix, work_dir=work_dir, max_requests=per_flood,
        ) as attack:  # fmt: skip
            time.sleep(0.5)
            with valid_run(f"valid-during-flood-{n}") as during:
                under = during.result()
            floods.append(attack.result())
        pairs.append((baseline, under))
    ratios = [(_p50(under) / max(_p50(alone), 1.0), alone["rps"] / max(under["rps"], 1.0)) for alone, under in pairs]
    best = min(range(FLOOD_ROUNDS), key=lambda i: max(ratios[i]))
    statuses: Counter[str] = Counter()
    for flood in floods:
        statuses.update(flood["by_status"])
    every = [r for pair in pairs for r in pair]
    return {
        "bad_requests": sum(f["requests"] for f in floods),
        "bad_statuses": dict(statuses),
        "bad_unexpected": sum(f["unexpected"] + sum(f["errors"].values()) for f in floods),
        "bad_rps": max(f["rps"] for f in floods),
        "valid_requests": sum(r["requests"] for r in every),
        "valid_errors": sum(r["unexpected"] + sum(r["errors"].values()) for r in every),
        "valid_rps": (pairs[best][0]["rps"], pairs[best][1]["rps"]),
        "valid_p50_ms": (_p50(pairs[best][0]), _p50(pairs[best][1])),
        "valid_slowdown": ratios[best][0],
        "valid_rate_drop": ratios[best][1],
        "pairs": [
            f"p50 {_p50(a):.0f}->{_p50(u):.0f} ms, {a['rps']:.0f}->{u['rps']:.0f}/s" for a, u in pairs
        ],
    }  # fmt: skip


def _p50(result: dict[str, Any]) -> float:
    values = [s["p50_ms"] for s in result["by_mix"].values() if s["p50_ms"] is not None]
    return float(sorted(values)[len(values) // 2]) if values else 0.0


def _report(
    figures: Scenario,
    *,
    fuzz: dict[str, Any],
    oversized: dict[str, Any],
    injected: dict[str, Any],
    cursors: dict[str, Any],
    flood: dict[str, Any],
) -> None:
    hostile = fuzz["calls"] + oversized["requests"] + injected["requests"] + cursors["requests"] + flood["bad_requests"]
    figures.faults = (
        f"{fuzz['calls']} generated, {oversized['requests']} oversized, {injected['requests']} injection, "
        f"{cursors['requests']} cursor, {flood['bad_requests']} bad-token requests"
    )
    figures.requests = f"{hostile} hostile + {flood['valid_requests']} valid requests"
    errors = len(fuzz["failures"]) + len(oversized["bad"]) + len(injected["bad"]) + len(cursors["bad"])
    figures.errors = (
        f"{errors} wrong answers, {flood['bad_unexpected']} bad tokens not 401, "
        f"{flood['valid_errors']} valid-client errors"
    )
    figures.recovery = (
        f"valid p50 {flood['valid_p50_ms'][0]:.0f} -> {flood['valid_p50_ms'][1]:.0f} ms during the flood "
        f"(x{flood['valid_slowdown']:.1f})"
    )
    figures.note(
        schemathesis_calls_by_role=fuzz["by_role"],
        oversized_statuses=oversized["statuses"],
        injection_statuses=injected["statuses"],
        cursor_statuses=cursors["statuses"],
        bad_token_statuses=flood["bad_statuses"],
        bad_token_rate_per_s=flood["bad_rps"],
        valid_rate_per_s_alone_vs_flood=flood["valid_rps"],
        valid_clients_alone_then_during_each_flood=flood["pairs"],
    )
