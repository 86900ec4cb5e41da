"""Scenario 2 — a 10 s database outage under API load with the syncer mid-run."""

from __future__ import annotations

import json
import threading
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
    compare_with_truth,
    ports,
    query,
    scalar,
    verify_store,
    wait_until,
)
from tests.reliability.loadgen import ERROR_CODES
from tests.reliability.report import Report
from tests.support.daemon_proc import http_get
from tests.support.mysql import MysqlServer
from tests.support.simulator import threaded_simulator
from tests.support.tcp_proxy import threaded_proxy

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

OUTAGE_S = 10.0
REQUEST_TIMEOUT_S = 3.0
RECOVERY_BOUND_S = 5.0  # the bound: everything serves again within 5 s of the DB's return
HANG_SLACK_S = 2.0  # scheduling noise on a loaded 2-core machine on top of API_REQUEST_TIMEOUT_S
BATCH = 40

ASSERTS = (
    "`run --mode all` reaches MariaDB only through a TCP proxy. While 32 connections load the API and the "
    "syncer is mid-run (its first load, pages slowed), the proxy refuses and cuts every connection for 10 s. "
    "Asserted: no answer but 200/304/503 (no 500), every 503 a problem with Retry-After, no request longer "
    f"than API_REQUEST_TIMEOUT_S ({REQUEST_TIMEOUT_S:g} s) + {HANG_SLACK_S:g} s, no connection refused or cut; "
    "/ready 503 during the outage; the syncer's run fails with whole batches only (rows written a multiple of "
    f"SYNC_BATCH_SIZE={BATCH}); no actor restart, same process; within 5 s of the proxy accepting again /ready "
    "is 200 and every request of the mix succeeds, and the next complete run converges to the provider's state."
)


def test_db_outage_under_load_gives_503s_and_recovers_without_restart(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """10 s outage: only 503 problems, /ready 503, whole batches only, recovery within 5 s, no restart."""
    figures = report.scenario(2, "Database outage (10 s)", ASSERTS)
    database = fresh_db()
    records = 4000  # 80 pages of at least 100 ms: the first load is still under way at the cut
    sim = RecordingSimulator(suite.needles, records=records, seed=202, slow_rate=1.0, slow_ms=100)
    with threaded_simulator(sim), threaded_proxy(mysql.host, mysql.port) as proxy:
        proxy.start()
        env = suite.env(
            mysql,
            database,
            db_port=proxy.port,
            **ports("API_PORT"),
            PROVIDER_URL=sim.url,
            PROVIDER_PAGE_SIZE="50",
            PROVIDER_TIMEOUT_S="5",
            SYNC_INTERVAL_S="1",
            SYNC_BATCH_SIZE=str(BATCH),
            API_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S),
            DB_QUERY_TIMEOUT_S="3",
        )
        with suite.daemon("s2", "daemon", ["run", "--mode", "all"], env) as daemon:
            daemon.wait_ready()
            pid = daemon.pid
            # The first run is loading (about 60 slow pages); the API serves what is there.
            wait_until(
                lambda: int(scalar(mysql, database, "SELECT COUNT(*) FROM customers")) >= 400,
                timeout=60,
                what="the first run under way",
            )
            mix = api_mix(suite.secrets)
            load = LoadRun(
                suite,
                "s2",
                "api-load",
                base=daemon.base,
                connections=32,
                duration_s=60,
                mix=mix,
                work_dir=tmp_path,
                item_range=(1, 400),
                timeout_s=REQUEST_TIMEOUT_S + 10,
                trace=True,
            )
            with load:
                time.sleep(2)
                running = query(mysql, database, "SELECT id FROM sync_runs WHERE status = 'running'")
                rows_before = int(scalar(mysql, database, "SELECT COUNT(*) FROM customers"))
                ready_polls: list[tuple[float, int]] = []
                polling = threading.Event()

                def poll_ready() -> None:
                    while not polling.is_set():
                        try:
                            status = http_get(daemon.base + "/ready", timeout=REQUEST_TIMEOUT_S + 5)[0]
                        except OSError:
                            status = -1
                        ready_polls.append((time.time(), status))
                        time.sleep(0.2)

                poller = threading.Thread(target=poll_ready, daemon=True)
                poller.start()
                down_at = time.time()
                proxy.stop()  # refuse new connections, cut every open one
                time.sleep(OUTAGE_S / 2)
                during = http_get(daemon.base + "/clientes/1", headers=suite.secrets.header("admin"), timeout=10)
                during_headers = _headers(daemon.base + "/clientes/1", suite.secrets.header("admin"))
                rows_during = int(scalar(mysql, database, "SELECT COUNT(*) FROM customers"))  # directly, not via proxy
                mark = int(scalar(mysql, database, "SELECT COALESCE(MAX(id), 0) FROM sync_runs"))
                time.sleep(max(0.0, down_at + OUTAGE_S - time.time()))
                up_at = time.time()
                proxy.start()
                ready_after = wait_until(
                    lambda: http_get(daemon.base + "/ready", timeout=5)[0] == 200, timeout=60, interval=0.05
                )
                time.sleep(8)  # keep loading after the recovery
                load.stop()
                polling.set()
                result = load.result()
                poller.join(10)
            # The syncer goes on: a complete run after the outage.
            wait_until(
                lambda: (
                    scalar(mysql, database, f"SELECT COUNT(*) FROM sync_runs WHERE complete = 1 AND id > {mark}") > 0
                ),
                timeout=120,
                what="a complete run after the outage",
            )
            scrape = daemon.metrics()
            same_process = daemon.alive() and daemon.pid == pid
            code, _ = daemon.stop()
        assert code == 0, daemon.log_text()[-3000:]
        expected = sim.expected()

    failed_runs = [e for e in daemon.events("sync_run_finished") if e.get("status") == "failed"]
    cut_run = next((e for e in failed_runs if "interrupted" not in str(e.get("error"))), None)
    check = verify_store(mysql, database, suite.secrets.keyring())
    comparison = compare_with_truth(check, expected)
    suite.dump(mysql, database, "s2")

    trace = result["trace"]
    t0 = result["started"]
    statuses = Counter(code for *_, code in trace)
    bad = [t for t in trace if t[3] not in (200, 304, 503)]
    slowest = max((t[1] for t in trace), default=0.0)
    during_outage = [t for t in trace if down_at <= t0 + t[0] <= up_at]
    non_ok_after = [t for t in trace if t0 + t[0] > up_at and t[3] not in (200, 304)]
    api_recovery = max((t0 + t[0] + t[1] - up_at for t in non_ok_after), default=0.0)
    ready_during = [s for t, s in ready_polls if down_at + 1.0 <= t <= up_at]
    restarts = scrape.total("customers_mngr_actor_restarts_total")

    figures.faults = f"DB unreachable {OUTAGE_S:g} s (proxy refused + cut connections)"
    figures.requests = f"{result['requests']} API requests (32 connections), {len(ready_polls)} /ready polls"
    figures.errors = (
        f"{statuses.get(503, 0)} 503 problems ({len([t for t in during_outage if t[3] == 503])} during the outage), "
        f"{len(bad)} other errors, slowest answer {slowest:.2f} s"
    )
    figures.recovery = f"/ready 200 {ready_after:.2f} s after the DB came back; " + (
        f"every request ok after {api_recovery:.2f} s" if non_ok_after else "no request failed from then on"
    )
    figures.rows = f"{comparison.compared} rows (decrypted) after the next complete run"
    figures.note(
        statuses={str(k): v for k, v in sorted(statuses.items())},
        ready_during_outage=dict(Counter(ready_during)),
        syncer_mid_run_at_cut=bool(running),
        rows_at_cut=rows_before,
        rows_during_outage=rows_during,
        cut_run=None if cut_run is None else {k: cut_run.get(k) for k in ("run_id", "status", "inserted", "error")},
        actor_restarts=restarts,
        admin_during_outage=during[0],
    )

    assert not bad, f"answers other than 200/304/503: {Counter(t[3] for t in bad)}; samples {result['samples'][:5]}"
    assert all(result["errors"][k] == 0 for k in ERROR_CODES), result["errors"]
    assert slowest <= REQUEST_TIMEOUT_S + HANG_SLACK_S, f"a request took {slowest:.2f} s"
    assert statuses.get(503, 0) > 0 and during[0] == 503
    assert during_headers.get("Content-Type", "").startswith("application/problem+json")
    assert during_headers.get("Retry-After"), "503 carries Retry-After"
    problem = json.loads(during[1])
    assert problem["status"] == 503 and problem["type"].endswith(":unavailable")
    assert ready_during and set(ready_during) == {503}, Counter(ready_during)
    assert bool(running), "the syncer was mid-run when the DB went away"
    assert rows_during % BATCH == 0, f"{rows_during} rows: a partial batch was committed"
    assert cut_run is not None, "the run cut by the outage ended failed"
    assert rows_during in (cut_run["inserted"], cut_run["inserted"] + BATCH)  # + one batch whose commit ack was cut
    assert same_process and restarts == 0, "no crash, no restart"
    assert ready_after <= RECOVERY_BOUND_S and api_recovery <= RECOVERY_BOUND_S
    assert comparison.equal, comparison.describe()
    assert check.sound
    figures.passed()


def _headers(url: str, headers: dict[str, str]) -> dict[str, str]:
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return dict(response.headers)
    except urllib.error.HTTPError as exc:
        return dict(exc.headers)
