"""Scenario 9 — data at rest and in logs: no provider secret in any table dump or log, no token, no key."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.reliability.harness import (
    ROLES,
    RecordingSimulator,
    Suite,
    ports,
    query,
    scalar,
    wait_until,
)
from tests.reliability.report import Report
from tests.reliability.scan import scan
from tests.support.daemon_proc import http_get
from tests.support.mysql import MysqlServer
from tests.support.simulator import threaded_simulator

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

ASSERTS = (
    "Runs last. Its own workload first: `run --mode all` at LOG_LEVEL=debug syncs a provider with 10% invalid "
    "records, then every role reads, admins decrypt every record and look cards up by number (the card in the "
    "query string), and clients send cards in paths, headers and request ids, and bad tokens. Then every table "
    "dump of every scenario of the session and every log file of every process the suite started (daemons, "
    "`sync --once`, migrations, load clients) are searched for every card number (with and without "
    "separators), CVV, account number, IP and DNI photo URL any provider served, and for the API tokens, the "
    "bad tokens and the keys (base64 and hex). Asserted: not one is found; the schema has no CVV column; and "
    "the search itself finds each kind of value when it is planted in a file."
)


def test_no_sensitive_value_at_rest_or_in_any_log(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """Every dump and every log of the suite: no card, CVV, account, IP, DNI URL, token or key of any record."""
    figures = report.scenario(9, "Data at rest and in logs", ASSERTS)
    earlier = sorted({p.parent.name for p in suite.log_files()})
    database = fresh_db()
    sim = RecordingSimulator(suite.needles, records=200, seed=909, bad_rate=0.1)
    requests = Counter[int]()
    with threaded_simulator(sim):
        env = suite.env(
            mysql,
            database,
            **ports("API_PORT"),
            PROVIDER_URL=sim.url,
            PROVIDER_PAGE_SIZE="50",
            LOG_LEVEL="debug",
            SYNC_INTERVAL_S="2",
        )
        with suite.daemon("s9", "daemon", ["run", "--mode", "all"], env) as daemon:
            daemon.wait_ready()
            wait_until(
                lambda: scalar(mysql, database, "SELECT COUNT(*) FROM sync_runs WHERE complete = 1") > 0,
                timeout=60,
                what="a complete run",
            )
            truth = sim.truth()
            for status in _workload(daemon.base, suite, truth):
                requests[status] += 1
            code, _ = daemon.stop()
        assert code == 0
    columns = [str(r[0]).lower() for r in query(mysql, database, "SELECT column_name FROM information_schema.columns "
                                                                  f"WHERE table_schema = '{database}'")]  # fmt: skip
    suite.dump(mysql, database, "s9")

    dumps = suite.dump_files()
    logs = suite.log_files()
    fixed = [*suite.secrets.needles(), *suite.extra_needles]
    at_rest = scan(dumps, suite.needles, fixed, root=suite.root)
    in_logs = scan(logs, suite.needles, fixed, root=suite.root)
    planted = _planted(tmp_path, suite)
    self_check = scan([planted], suite.needles, fixed, root=tmp_path)
    found_kinds = {f.kind for f in self_check.findings}

    findings = at_rest.findings + in_logs.findings
    counts = suite.needles.counts()
    figures.faults = f"{sum(counts.values())} provider values, {len(fixed)} tokens and key forms searched"
    figures.requests = (
        f"{sum(requests.values())} API requests of this scenario; scenarios scanned: {', '.join([*earlier, 's9'])}"
    )
    figures.errors = f"{len(findings)} values found ({len(at_rest.findings)} at rest, {len(in_logs.findings)} in logs)"
    figures.recovery = "—"
    figures.rows = (
        f"{at_rest.files} table dumps ({at_rest.bytes / 1e6:.1f} MB), "
        f"{in_logs.files} logs ({in_logs.bytes / 1e6:.1f} MB) searched"
    )
    figures.note(
        values_searched=counts,
        statuses_of_this_workload=dict(requests),
        search_self_check=sorted(found_kinds),
        findings=[str(f) for f in findings[:20]],
    )

    assert not any("ccv" in c or "cvv" in c for c in columns), "no column for the CVV"
    assert found_kinds >= {"card number", "account number", "IP", "DNI URL", "CVV", "token or key"}, found_kinds
    assert counts["card numbers"] and counts["CVVs"] and counts["account numbers"] and counts["IPs"]
    assert not findings, "\n".join(map(str, findings[:50]))
    figures.passed()


def _workload(base: str, suite: Suite, truth: list[dict[str, object]]) -> list[int]:
    """Everything a client could do to put a sensitive value where it would be logged."""
    statuses: list[int] = []

    def get(path: str, headers: dict[str, str] | None = None) -> None:
        statuses.append(http_get(base + path, headers=headers, timeout=15)[0])

    admin = suite.secrets.header("admin")
    for role in ROLES:
        get("/clientes?limit=1000", suite.secrets.header(role))
        get("/clientes?limit=1000&include_deleted=true", suite.secrets.header(role))
    for record in truth[:30]:
        card = str(record["credit_card_num"])
        get(f"/clientes?card_number={quote(card)}", admin)
        get(f"/clientes?card_number={quote(card.replace('-', ''))}", admin)
        get(f"/clientes?card_number={quote(card)}", suite.secrets.header("analyst"))  # 403
        get(f"/clientes/{record['id']}", admin)
        get(f"/clientes/{card.replace('-', '')}", admin)  # a card as an id: 400
        get("/clientes/1", {**admin, "X-Request-ID": card.replace("-", ""), "X-Card": card})
        get(f"/clientes/1?ip={quote(str(record['ip']))}", admin)  # unknown parameter: 400
        get(f"/clientes?cursor={quote(str(record['cuenta_numero']))}", admin)  # bad cursor: 400
        get("/clientes", {"Authorization": f"Bearer {record['foto_dni']}"})  # a DNI URL as a token: 401
        get("/clientes", {"Authorization": str(record["credit_card_ccv"])})  # a CVV as a token: 401
    get("/sync/runs?limit=100", admin)
    return statuses


def _planted(tmp_path: Path, suite: Suite) -> Path:
    """A log-like file holding one value of each kind: the search must find every one."""
    needles = suite.needles
    card = next(iter(needles.cards))
    spaced = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
    lines = [
        {"event": "x", "detail": f"card {spaced} declined"},
        {"event": "x", "acct": next(iter(needles.accounts))},
        {"event": "x", "peer": next(iter(needles.ips))},
        {"event": "x", "photo": next(iter(needles.dni_urls))},
        {"event": "x", "ccv": next(iter(needles.cvvs))},
        {"event": "x", "auth": suite.secrets.tokens["viewer"]},
    ]
    path = tmp_path / "planted.log"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    return path
