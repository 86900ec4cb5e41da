"""Scenario 5 — split brain: the leader's lock connection is cut mid-run; the fenced writer writes nothing more."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from daemon.db.migrate import lock_name
from daemon.syncer.leader import LOCK_PURPOSE
from tests.reliability.harness import (
    RecordingSimulator,
    Suite,
    compare_with_truth,
    install_write_log,
    migrate_database,
    ports,
    query,
    scalar,
    verify_store,
    wait_until,
)
from tests.reliability.proxy import tracking_proxy
from tests.reliability.report import Report
from tests.support.mysql import MysqlServer
from tests.support.simulator import threaded_simulator

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

ASSERTS = (
    "Two `run --mode syncer` processes on one database: A (the leader, mid-run on a slowed provider) reaches "
    "MariaDB through a proxy that knows each connection's server id; B connects directly and skips its runs "
    "while A leads. The proxy cuts exactly A's writer-lock connection (both sides reset); A's pool connections "
    "keep working. A server-side trigger log of every committed write, with its connection and order, must show "
    "that no write of A's connections was committed after B's epoch bump; B must take the lock and finish a "
    "complete run, after which the live rows equal the provider's valid state, every row whole."
)


def test_cut_lock_connection_fences_the_old_leader(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str]
) -> None:
    """Cutting the leader's lock connection mid-run: A writes nothing after B's epoch; B takes over; data consistent."""
    figures = report.scenario(5, "Split brain (lock connection cut)", ASSERTS)
    database = fresh_db()
    # 100 pages of at least 100 ms: A is still in its first run when its lock connection is cut.
    sim = RecordingSimulator(suite.needles, records=5000, seed=505, slow_rate=1.0, slow_ms=100, churn_rate=0.02)
    lock = lock_name(database, LOCK_PURPOSE)
    with threaded_simulator(sim), tracking_proxy(mysql.host, mysql.port) as proxy, contextlib.ExitStack() as stack:
        common = {
            "PROVIDER_URL": sim.url,
            "PROVIDER_PAGE_SIZE": "50",
            "SYNC_BATCH_SIZE": "40",
            "DB_QUERY_TIMEOUT_S": "3",
        }
        env_a = suite.env(mysql, database, db_port=proxy.port, **ports("METRICS_PORT"), SYNC_INTERVAL_S="60", **common)
        env_b = suite.env(mysql, database, **ports("METRICS_PORT"), SYNC_INTERVAL_S="1", **common)
        migrate_database(suite, "s5", env_b)
        install_write_log(mysql, database)
        with suite.daemon("s5", "syncer-a", ["run", "--mode", "syncer"], env_a) as a:
            a.wait_ready()
            wait_until(lambda: int(scalar(mysql, database, "SELECT COUNT(*) FROM customers")) >= 300, timeout=60)
            b = suite.daemon("s5", "syncer-b", ["run", "--mode", "syncer"], env_b)
            stack.callback(b.close)
            b.wait_ready()
            wait_until(lambda: len(b.events("sync_run_skipped")) >= 1, timeout=30, what="B standing by")
            holder = int(scalar(mysql, database, f"SELECT IS_USED_LOCK('{lock}')"))
            a_conns = set(proxy.seen)
            assert holder in a_conns, "A holds the lock through the proxy"
            epoch_a = int(scalar(mysql, database, "SELECT epoch FROM sync_leader WHERE name = 'customers'"))
            seq_at_cut = int(scalar(mysql, database, "SELECT COALESCE(MAX(seq), 0) FROM rel_writes"))
            rows_at_cut = int(scalar(mysql, database, "SELECT COUNT(*) FROM customers"))
            cut_at = time.monotonic()
            assert proxy.cut(holder)
            takeover = wait_until(
                lambda: (
                    int(scalar(mysql, database, "SELECT epoch FROM sync_leader WHERE name = 'customers'")) > epoch_a
                ),
                timeout=30,
                interval=0.05,
                what="B takes the lock",
            )
            mark = int(scalar(mysql, database, "SELECT COALESCE(MAX(id), 0) FROM sync_runs"))
            sim.churn_rate = 0.0
            wait_until(
                lambda: (
                    scalar(
                        mysql,
                        database,
                        "SELECT COUNT(*) FROM sync_runs WHERE complete = 1 "
                        f"AND id > {mark} AND leader_epoch > {epoch_a}",
                    )
                    > 0
                ),
                timeout=120,
                what="B's complete run",
            )
            time.sleep(1.0)  # A has long noticed; anything it still tried would be in the log by now
            a_conns = set(proxy.seen)
            a_alive, b_alive = a.alive(), b.alive()
            code_a, _ = a.stop()
            code_b, _ = b.stop()
        expected = sim.expected()
    elapsed = time.monotonic() - cut_at

    epoch_b = int(scalar(mysql, database, "SELECT epoch FROM sync_leader WHERE name = 'customers'"))
    bump_seq = int(
        scalar(mysql, database, f"SELECT MIN(seq) FROM rel_writes WHERE tbl = 'leader' AND row_id > {epoch_a}")
    )
    writes = query(mysql, database, "SELECT seq, tbl, conn FROM rel_writes WHERE tbl IN ('customers', 'quarantine')")
    a_writes = [w for w in writes if int(w[2]) in a_conns]  # type: ignore[call-overload]
    a_after_bump = [w for w in a_writes if int(w[0]) > bump_seq]  # type: ignore[call-overload]
    a_after_cut = [w for w in a_writes if int(w[0]) > seq_at_cut]  # type: ignore[call-overload]
    b_writes = [w for w in writes if int(w[2]) not in a_conns]  # type: ignore[call-overload]
    a_runs = [e for e in a.events("sync_run_finished") if e.get("leader_epoch") == epoch_a]
    a_error = str(a_runs[-1].get("error")) if a_runs else ""
    check = verify_store(mysql, database, suite.secrets.keyring())
    comparison = compare_with_truth(check, expected)
    suite.dump(mysql, database, "s5")

    figures.faults = "A's writer-lock connection reset mid-run (its pool untouched)"
    figures.requests = f"{len(writes)} committed row writes logged ({len(a_writes)} by A, {len(b_writes)} by B)"
    figures.errors = f"{len(a_after_bump)} writes by A after B's epoch bump ({len(a_after_cut)} after the cut)"
    figures.recovery = f"B took the lock {takeover:.2f} s after the cut (epoch {epoch_a} -> {epoch_b})"
    figures.rows = f"{comparison.compared} rows (decrypted)"
    figures.note(
        rows_at_cut=rows_at_cut,
        a_run_error=a_error,
        a_connections_seen=len(a_conns),
        exit_codes={"A": code_a, "B": code_b},
        seconds_from_cut_to_end=round(elapsed, 1),
    )

    assert a_writes, "A wrote before the cut (the log sees its connections)"
    assert not a_after_bump, f"A committed {len(a_after_bump)} writes after B's epoch bump"
    assert b_writes and epoch_b == epoch_a + 1
    assert a_runs and a_runs[-1]["status"] == "failed" and ("lock" in a_error or "fenced" in a_error), a_error
    assert a_alive and b_alive and code_a == 0 and code_b == 0
    assert comparison.equal, comparison.describe()
    assert check.sound
    figures.passed()
