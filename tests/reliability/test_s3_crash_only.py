"""Scenario 3 — crash-only: kill -9 at random moments of a sync, restart, and converge."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.reliability.harness import (
    RecordingSimulator,
    Suite,
    compare_with_truth,
    install_write_log,
    migrate_database,
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

SEED = 303

ASSERTS = (
    "`run --mode syncer` is killed with SIGKILL at random moments — during start-up, migrations and lock "
    "taking, and mid-run between and inside batch transactions — and restarted each time, while the provider "
    "churns. After every kill: every stored row is whole (each ciphertext decrypts, last 4, mask, blind index "
    "and content hash match the decrypted values) and every committed write to `customers` is covered by the "
    "`data_version` bump of its own transaction (a server-side trigger log), i.e. no half-written batch. At the "
    "end the churn stops and one more run must leave the live rows equal to the provider's valid state, with no "
    "duplicate and no run left `running`."
)


def test_kill_9_at_random_moments_then_converge(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str]
) -> None:
    """10 kill -9s mid-sync, restarted each time: whole rows and batches only, then exact convergence."""
    figures = report.scenario(3, "Crash-only (kill -9)", ASSERTS)
    database = fresh_db()
    kills = 40 if soak() else 10
    rng = random.Random(SEED)
    sim = RecordingSimulator(suite.needles, records=1500, seed=SEED, slow_rate=1.0, slow_ms=40, churn_rate=0.03)
    moments: Counter[str] = Counter()
    after_kill: list[dict[str, object]] = []
    with threaded_simulator(sim):
        env = suite.env(
            mysql,
            database,
            **ports("METRICS_PORT"),
            PROVIDER_URL=sim.url,
            PROVIDER_PAGE_SIZE="50",
            SYNC_INTERVAL_S="0.3",
            SYNC_BATCH_SIZE="40",
        )
        migrate_database(suite, "s3", env)
        install_write_log(mysql, database)
        last_epoch = 0
        for n in range(1, kills + 1):
            with suite.daemon("s3", f"syncer-{n:02d}", ["run", "--mode", "syncer"], env) as daemon:
                if n % 3 == 1:  # somewhere in start-up: imports, pool, migrations, lock, first pages
                    time.sleep(rng.uniform(0.05, 1.5))
                else:  # somewhere in a run of this process (one lasts over a second: 30 pages of 40 ms)
                    epoch = last_epoch
                    wait_until(
                        lambda epoch=epoch: bool(
                            query(
                                mysql,
                                database,
                                f"SELECT 1 FROM sync_runs WHERE status = 'running' AND leader_epoch > {epoch}",
                            )
                        ),
                        timeout=60,
                        interval=0.02,
                        what="a run of the restarted process",
                    )
                    time.sleep(rng.uniform(0.0, 1.0))
                running = bool(
                    query(
                        mysql,
                        database,
                        f"SELECT 1 FROM sync_runs WHERE status = 'running' AND leader_epoch > {last_epoch} LIMIT 1",
                    )
                )
                daemon.kill9()
            last_epoch = int(scalar(mysql, database, "SELECT COALESCE(MAX(epoch), 0) FROM sync_leader"))
            moments["mid-run" if running else "start-up or between runs"] += 1
            after_kill.append(_invariants(suite, mysql, database))
        mark = int(scalar(mysql, database, "SELECT COALESCE(MAX(id), 0) FROM sync_runs"))
        sim.churn_rate = 0.0
        with suite.daemon("s3", "syncer-final", ["run", "--mode", "syncer"], env) as daemon:
            recovery = wait_until(
                lambda: (
                    scalar(mysql, database, f"SELECT COUNT(*) FROM sync_runs WHERE complete = 1 AND id > {mark}") > 0
                ),
                timeout=180,
                what="a complete run after the last kill",
            )
            scrape = daemon.metrics()
            code, _ = daemon.stop()
        assert code == 0, daemon.log_text()[-3000:]
        expected = sim.expected()
    final = _invariants(suite, mysql, database)
    check = verify_store(mysql, database, suite.secrets.keyring())
    comparison = compare_with_truth(check, expected)
    runs = Counter(str(r[0]) for r in query(mysql, database, "SELECT status FROM sync_runs"))
    abandoned = int(scalar(mysql, database, "SELECT COUNT(*) FROM sync_runs WHERE error LIKE 'abandoned%'"))
    duplicates = query(
        mysql,
        database,
        "SELECT run_id, provider_id, COUNT(*) FROM sync_quarantine GROUP BY run_id, provider_id HAVING COUNT(*) > 1",
    )
    suite.dump(mysql, database, "s3")

    torn = sum(int(k["uncovered_writes"]) for k in after_kill)  # type: ignore[call-overload]
    unsound = sum(int(k["unsound_rows"]) for k in after_kill)  # type: ignore[call-overload]
    figures.faults = f"{kills} kill -9 ({moments['mid-run']} mid-run, {moments['start-up or between runs']} other)"
    figures.requests = f"{sum(sim.faults.values())} provider requests, {sum(runs.values())} runs"
    figures.errors = (
        f"{torn} half-written batches, {unsound} broken rows, {check.decrypt_failures.__len__()} undecryptable"
    )
    figures.recovery = f"converged {recovery:.1f} s after the last restart"
    figures.rows = f"{comparison.compared} rows (decrypted), {check.values_decrypted} values decrypted"
    figures.note(
        runs_by_status=dict(runs),
        runs_closed_as_abandoned=abandoned,
        writes_logged=final["writes"],
        churn=dict(sim.churned),
        restarts_in_final_process=scrape.total("customers_mngr_actor_restarts_total"),
        kill_seed=SEED,
    )

    assert torn == 0 and final["uncovered_writes"] == 0, "a batch was committed without its data_version bump"
    assert unsound == 0 and check.sound, (check.decrypt_failures[:5], check.inconsistent[:5])
    assert comparison.equal, comparison.describe()
    assert not duplicates
    assert "running" not in runs, "every run of a killed process is closed by the next leader"
    assert abandoned >= moments["mid-run"] - 1  # the last kill's run is closed by the final process too
    assert moments["mid-run"] >= kills // 2, "most kills landed in a run"
    figures.passed()


def _invariants(suite: Suite, mysql: MysqlServer, database: str) -> dict[str, object]:
    """Right after a kill: rows whole, and every committed write covered by its transaction's version bump."""
    version = int(scalar(mysql, database, "SELECT version FROM data_version WHERE name = 'customers'"))
    uncovered = int(
        scalar(
            mysql,
            database,
            f"SELECT COUNT(*) FROM rel_writes WHERE tbl = 'customers' AND version_seen >= {version}",
        )
    )
    writes = int(scalar(mysql, database, "SELECT COUNT(*) FROM rel_writes WHERE tbl = 'customers'"))
    check = verify_store(mysql, database, suite.secrets.keyring())
    return {
        "version": version,
        "writes": writes,
        "uncovered_writes": uncovered,
        "unsound_rows": len(check.decrypt_failures) + len(check.inconsistent),
    }
