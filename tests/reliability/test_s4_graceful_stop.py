"""Scenario 4 — graceful stop under load: SIGTERM while 32 connections hammer the API."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.harness import (
    LoadRun,
    RecordingSimulator,
    Suite,
    api_mix,
    ports,
    query,
    scalar,
    verify_store,
    wait_until,
)
from tests.reliability.report import Report
from tests.support.mysql import MysqlServer
from tests.support.simulator import threaded_simulator

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

EXIT_BOUND_S = 10.0
TAKEOVER_BOUND_S = 5.0

ASSERTS = (
    "`run --mode all` (API + syncer mid-run, default SHUTDOWN_TIMEOUT_S) gets SIGTERM while a separate client "
    "process keeps 32 connections busy on a mix of endpoints and roles; a second process (`run --mode syncer`) "
    "stands by. Asserted: every request the client sent got its full answer, none a 5xx, a cut connection or a "
    "timeout (only new connections after the listener closed may be refused), and the daemon's access log has "
    "exactly the answers the client received on logged routes; exit 0 within 10 s; the run cut short is "
    "recorded failed with whole batches only; the standby takes the writer lock within a few seconds."
)


def test_sigterm_under_load_drains_and_releases_the_lock(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """SIGTERM under 32 connections: no in-flight request fails, exit 0 within 10 s, the standby takes over."""
    figures = report.scenario(4, "Graceful stop under load", ASSERTS)
    database = fresh_db()
    records = 6000  # 120 pages of at least 100 ms: the first load is still under way at SIGTERM
    sim = RecordingSimulator(suite.needles, records=records, seed=404, slow_rate=1.0, slow_ms=100)
    with threaded_simulator(sim), contextlib.ExitStack() as stack:
        common = {"PROVIDER_URL": sim.url, "PROVIDER_PAGE_SIZE": "50", "SYNC_BATCH_SIZE": "40"}
        env = suite.env(mysql, database, **ports("API_PORT"), SYNC_INTERVAL_S="2", **common)
        env_standby = suite.env(mysql, database, **ports("METRICS_PORT"), SYNC_INTERVAL_S="0.5", **common)
        with suite.daemon("s4", "daemon", ["run", "--mode", "all"], env) as daemon:
            daemon.wait_ready()
            wait_until(lambda: int(scalar(mysql, database, "SELECT COUNT(*) FROM customers")) >= 400, timeout=60)
            standby = suite.daemon("s4", "standby", ["run", "--mode", "syncer"], env_standby)
            stack.callback(standby.close)
            standby.wait_ready()
            wait_until(lambda: len(standby.events("sync_run_skipped")) >= 1, timeout=30, what="standby skipping")
            epoch = int(scalar(mysql, database, "SELECT epoch FROM sync_leader WHERE name = 'customers'"))
            load = LoadRun(
                suite,
                "s4",
                "api-load",
                base=daemon.base,
                connections=32,
                duration_s=40,
                mix=api_mix(suite.secrets),
                work_dir=tmp_path,
                item_range=(1, 400),
                timeout_s=30,
                trace=True,
            )
            with load:
                time.sleep(3)
                running = bool(query(mysql, database, "SELECT 1 FROM sync_runs WHERE status = 'running'"))
                term_at = time.time()
                code, exit_s = daemon.stop(timeout=40)
                exited_at = time.time()
                takeover = wait_until(
                    lambda: (
                        int(scalar(mysql, database, "SELECT epoch FROM sync_leader WHERE name = 'customers'")) > epoch
                    ),
                    timeout=30,
                    interval=0.05,
                    what="the standby takes the lock",
                )
                time.sleep(1)
                load.stop()
                result = load.result()
            standby_code, _ = standby.stop()

    trace = result["trace"]
    t0 = result["started"]
    mix = result["mix"]
    answered = [t for t in trace if t[3] >= 0]
    failed = [t for t in trace if t[3] >= 500 or t[3] in (-2, -3, -4)]
    refused = [t for t in trace if t[3] == -1]
    refused_before_term = [t for t in refused if t0 + t[0] < term_at]
    in_flight_at_term = [t for t in answered if t0 + t[0] <= term_at <= t0 + t[0] + t[1]]
    logged_routes = {i for i, name in enumerate(mix) if name not in ("health",)}
    client_logged = sum(1 for t in answered if t[2] in logged_routes)
    # One line per answered request: the audit event on audited routes (those cut short by the stop, 499,
    # were never answered), the http_request access line on the others.
    answered_audit = [e for e in daemon.events("api_access") if e.get("status") != 499]
    server_logged = len(daemon.events("http_request")) + len(answered_audit)
    cancelled = [e for e in daemon.events("api_access") if e.get("status") == 499]
    cut_runs = [e for e in daemon.events("sync_run_finished") if "interrupted" in str(e.get("error"))]
    rows = int(scalar(mysql, database, "SELECT COUNT(*) FROM customers"))
    check = verify_store(mysql, database, suite.secrets.keyring())
    suite.dump(mysql, database, "s4")

    figures.faults = "SIGTERM under 32 connections, syncer mid-run"
    figures.requests = f"{result['requests']} API requests ({len(in_flight_at_term)} in flight at SIGTERM)"
    figures.errors = f"{len(failed)} failed, {len(refused)} refused after the listener closed"
    figures.recovery = f"exit {code} in {exit_s:.2f} s; standby led {takeover:.2f} s after the exit"
    figures.rows = f"{rows} rows, all whole ({check.values_decrypted} values decrypted)"
    figures.note(
        statuses=dict(Counter(str(t[3]) for t in trace)),
        server_logged_vs_client_received=f"{server_logged} / {client_logged}",
        audit_events_cut_short=len(cancelled),
        syncer_mid_run_at_sigterm=running,
        run_cut_short=None if not cut_runs else {k: cut_runs[-1].get(k) for k in ("status", "inserted", "error")},
        standby_exit=standby_code,
        seconds_sigterm_to_exit=round(exited_at - term_at, 2),
    )

    assert in_flight_at_term, "requests were in flight when SIGTERM arrived"
    assert not failed, f"in-flight requests failed: {Counter(t[3] for t in failed)}; {result['samples'][:5]}"
    assert not refused_before_term
    assert server_logged == client_logged, "every request the daemon started was answered to the client"
    assert not cancelled
    assert code == 0 and exit_s <= EXIT_BOUND_S
    assert takeover <= TAKEOVER_BOUND_S, "the writer lock was released at exit"
    assert standby_code == 0
    assert running and cut_runs and cut_runs[-1]["status"] == "failed"
    assert rows % 40 == 0 or rows == records, f"{rows} rows: a partial batch"
    assert check.sound
    figures.passed()
