"""Scenario 1 — provider faults: the syncer converges to exactly the provider's valid state."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest

from daemon.provider.records import Rejected, parse_record
from tests.reliability.harness import (
    RecordingSimulator,
    Suite,
    compare_with_truth,
    ports,
    query,
    scalar,
    soak,
    verify_store,
    wait_until,
)
from tests.reliability.report import Report
from tests.support.mysql import MysqlServer
from tests.support.simulator import threaded_simulator

pytestmark = [pytest.mark.reliability, pytest.mark.slow, pytest.mark.timeout(3600 if soak() else 300)]

ASSERTS = (
    "The syncer (`run --mode syncer`) reads a simulator answering 20% of requests 5xx, 10% 429 with "
    "Retry-After, 10% slower than PROVIDER_TIMEOUT_S, with 5% invalid records and 5% churn (changes, "
    "removals, additions) before every snapshot. After several complete runs the churn stops; the next "
    "complete run must leave the live rows equal, row by row and decrypted, to the simulator's own valid "
    "state, every removed record soft-deleted, every stored value decryptable with derived columns and "
    "content hash matching, and that run's quarantine holding exactly the invalid records with their "
    "reasons. The daemon must not crash or restart an actor."
)


def test_provider_faults_converge_to_the_providers_valid_state(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str]
) -> None:
    """Under 5xx, 429, timeouts, invalid records and churn, the DB ends equal to the provider's valid state."""
    figures = report.scenario(1, "Provider faults", ASSERTS)
    database = fresh_db()
    records = 2000 if soak() else 800
    churned_runs = 20 if soak() else 6
    timeout_s = 0.8
    sim = RecordingSimulator(
        suite.needles,
        records=records,
        seed=101,
        error_rate=0.20,
        throttle_rate=0.10,
        retry_after="0.3",
        slow_rate=1 / 7,  # drawn after the 30% of 429/5xx: 10% of all requests
        slow_ms=int(timeout_s * 2000),
        bad_rate=0.05,
        churn_rate=0.05,
    )
    started = time.monotonic()
    with threaded_simulator(sim):
        env = suite.env(
            mysql,
            database,
            **ports("METRICS_PORT"),
            PROVIDER_URL=sim.url,
            PROVIDER_PAGE_SIZE="50",
            PROVIDER_TIMEOUT_S=str(timeout_s),
            PROVIDER_MAX_RETRIES="6",
            PROVIDER_RETRY_MAX_WAIT_S="0.5",
            SYNC_INTERVAL_S="0.5",
            SYNC_BATCH_SIZE="40",
        )
        with suite.daemon("s1", "syncer", ["run", "--mode", "syncer"], env) as daemon:
            daemon.wait_ready()

            def complete_runs() -> int:
                return int(scalar(mysql, database, "SELECT COUNT(*) FROM sync_runs WHERE complete = 1"))

            wait_until(lambda: complete_runs() >= churned_runs, timeout=400, what=f"{churned_runs} complete runs")
            sim.churn_rate = 0.0  # the provider's state is final from here on
            mark = int(scalar(mysql, database, "SELECT COALESCE(MAX(id), 0) FROM sync_runs"))
            churn_stopped = time.monotonic()

            def final_run() -> int | None:
                found = scalar(mysql, database, f"SELECT MIN(id) FROM sync_runs WHERE complete = 1 AND id > {mark}")
                return None if found is None else int(found)

            wait_until(lambda: final_run() is not None, timeout=200, what="a complete run after the churn stopped")
            last = final_run()
            assert last is not None
            converge_s = time.monotonic() - churn_stopped
            scrape = daemon.metrics()
            code, stop_s = daemon.stop()
        assert code == 0, daemon.log_text()[-3000:]

        expected = sim.expected()
        rejects = [r for r in map(parse_record, sim.records()) if isinstance(r, Rejected)]
        removed = sim.churned["removed"]
    elapsed = time.monotonic() - started

    runs = query(mysql, database, "SELECT id, status, complete, error FROM sync_runs ORDER BY id")
    statuses = Counter(str(r[1]) for r in runs)
    check = verify_store(mysql, database, suite.secrets.keyring())
    comparison = compare_with_truth(check, expected)
    quarantined = query(mysql, database, f"SELECT provider_id, reasons FROM sync_quarantine WHERE run_id = {last}")
    stored_rejects = Counter((pid, _reasons(text)) for pid, text in quarantined)
    wanted_rejects = Counter((r.provider_id, tuple(sorted(r.reasons))) for r in rejects)
    suite.dump(mysql, database, "s1")

    retries = {
        reason: int(scrape.total("customers_mngr_provider_retries_total", reason=reason))
        for reason in ("status_5xx", "status_429", "timeout", "connection")
    }
    restarts = scrape.total("customers_mngr_actor_restarts_total")
    faults = sim.faults
    figures.faults = (
        f"{faults['5xx']} 5xx, {faults['429']} 429, {faults['slow']} slow; "
        f"{len(rejects)} invalid records; "
        f"churn {sim.churned['changed']}/{removed}/{sim.churned['added']} (changed/removed/added)"
    )
    provider_requests = sum(faults.values())
    figures.requests = f"{provider_requests} provider requests, {len(runs)} runs"
    stopped = sum(1 for r in runs if r[1] == "failed" and str(r[3]).startswith("interrupted"))
    figures.errors = (
        f"{retries['status_5xx']} 5xx + {retries['status_429']} 429 + {retries['timeout']} timeouts retried; "
        f"{statuses['failed'] - stopped} runs failed past their retries; {restarts:g} crashes"
    )
    figures.recovery = f"converged {converge_s:.1f} s after the churn stopped"
    figures.rows = f"{comparison.compared} rows (decrypted), {len(quarantined)} quarantined"
    figures.note(
        runs_by_status=dict(statuses),
        runs_cut_by_the_final_stop=stopped,
        live_rows=check.live,
        soft_deleted_rows=check.deleted,
        values_decrypted=check.values_decrypted,
        decrypt_failures=len(check.decrypt_failures),
        inconsistent_rows=len(check.inconsistent),
        fault_share=f"{(faults['5xx'] + faults['429'] + faults['slow']) / max(1, provider_requests):.0%} of requests",
        daemon_exit=f"{code} in {stop_s:.1f} s",
        scenario_seconds=round(elapsed, 1),
    )

    assert restarts == 0, "an actor crashed and was restarted"
    assert faults["5xx"] and faults["429"] and faults["slow"], "every kind of fault was injected"
    assert retries["status_5xx"] and retries["status_429"] and retries["timeout"]
    assert comparison.equal, comparison.describe()
    assert check.sound, (check.decrypt_failures[:5], check.inconsistent[:5])
    assert check.live == len(expected)
    assert check.rows == check.live + check.deleted
    if removed:
        assert check.deleted > 0, "removed records are soft-deleted, not lost"
    assert stored_rejects == wanted_rejects, "the final run's quarantine is exactly the invalid records"
    assert all(reasons for _, reasons in stored_rejects), "every quarantined record has its reasons"
    assert {str(r[1]) for r in runs} <= {"ok", "partial", "failed"}, "no run left running"
    figures.passed()


def _reasons(text: object) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((r["field"], r["rule"]) for r in json.loads(str(text))))
