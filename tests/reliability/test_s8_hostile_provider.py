"""Scenario 8 — hostile provider input: bounded memory, quarantine or a clear run failure, never a crash."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.harness import (
    OnceResult,
    Suite,
    ports,
    query,
    rss_kib,
    scalar,
    sync_once,
    verify_store,
    vm_hwm_kib,
    wait_until,
)
from tests.reliability.hostile import CASES, CYCLE, MB, hostile_provider
from tests.reliability.report import Report
from tests.support.mysql import MysqlServer

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

MEMORY_BOUND_MIB = 512  # peak resident memory of any one `sync --once` or of the long-running syncer
QUARANTINE_RECORD_MAX = 16 * 1024  # bytes of one quarantined record (public fields, each cut to 256 chars)

ASSERTS = (
    "A hostile provider serves one kind of bad input per endpoint; `sync --once` runs against each, on a fresh "
    "database. Asserted per case: exit 0/4 with the expected rows and quarantine, or exit 1 with a `failed` "
    "run whose error names the cause (never an `internal error`, never a traceback, never a signal); peak "
    f"resident memory (VmHWM, sampled every 20 ms) under {MEMORY_BOUND_MIB} MiB whatever the body size; "
    "every stored row whole and "
    "decryptable; every quarantined record bounded. Then `run --mode syncer` faces the single-request cases one "
    "snapshot after another: it must stay up with no actor restart and bounded memory."
)


def test_hostile_provider_input_never_crashes_and_memory_stays_bounded(
    suite: Suite, report: Report, mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """Each hostile body: a quarantine or a clear failure with bounded memory; the daemon survives them all."""
    figures = report.scenario(8, "Hostile provider input", ASSERTS)
    outcomes: dict[str, str] = {}
    peaks: dict[str, int] = {}
    wrong: list[str] = []
    quarantined_total = 0
    crashes = 0
    with hostile_provider(suite.needles) as server:
        for case in CASES:
            database = fresh_db()
            settings = {
                "PROVIDER_URL": server.url(case.name),
                "PROVIDER_PAGE_SIZE": "10",
                "PROVIDER_MAX_RETRIES": "2",
                "PROVIDER_RETRY_MAX_WAIT_S": "0.1",
                "PROVIDER_TIMEOUT_S": "10",
                "SYNC_BATCH_SIZE": "500",
            }
            env = suite.env(mysql, database, **{**settings, **dict(case.env)})
            result = sync_once(suite, "s8", case.name, env)
            # A crash: killed by a signal, or an exit without the run's summary line (an uncaught error).
            crashes += result.code < 0 or result.summary is None
            peaks[case.name] = result.peak_rss_kib // 1024
            outcomes[case.name] = _outcome(result)
            problems = _judge(case.name, case.outcome, case.error, result)
            if case.outcome == "stored" and result.summary is not None:
                run_id = result.summary["run_id"]
                live = int(scalar(mysql, database, "SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL"))
                held = query(
                    mysql, database, f"SELECT LENGTH(record), reasons FROM sync_quarantine WHERE run_id = {run_id}"
                )
                quarantined_total += len(held)
                check = verify_store(mysql, database, suite.secrets.keyring())
                if case.rows is not None and live != case.rows:
                    problems.append(f"{live} live rows, expected {case.rows}")
                if case.quarantined is not None and len(held) != case.quarantined:
                    problems.append(f"{len(held)} quarantined, expected {case.quarantined}")
                if any(int(size) > QUARANTINE_RECORD_MAX for size, _ in held):  # type: ignore[call-overload]
                    problems.append("a quarantined record is not bounded")
                if case.duplicates is not None and result.summary.get("duplicates") != case.duplicates:
                    problems.append(
                        f"{result.summary.get('duplicates')} duplicates counted, expected {case.duplicates}"
                    )
                if any(str(reasons) in ("", "[]") for _, reasons in held):
                    problems.append("a quarantined record without reasons")
                if not check.sound:
                    problems.append(f"rows not whole: {check.inconsistent[:3]} {check.decrypt_failures[:3]}")
            if result.peak_rss_kib > MEMORY_BOUND_MIB * 1024:
                problems.append(f"peak RSS {result.peak_rss_kib // 1024} MiB")
            wrong += [f"{case.name}: {p}" for p in problems]
            suite.dump(mysql, database, f"s8-{case.name}")
        daemon_figures = _long_running(suite, mysql, fresh_db(), server.url("cycle"))
        served = list(server.cycle_served)

    figures.faults = f"{len(CASES)} hostile bodies ({', '.join(c.name for c in CASES)})"
    figures.requests = (
        f"{sum(server.requests.values())} provider requests; {len(served)} hostile snapshots to one daemon"
    )
    crashes += not daemon_figures["alive"]
    figures.errors = f"{len(wrong)} wrong outcomes, {daemon_figures['restarts']:g} actor restarts, {crashes} crashes"
    figures.recovery = f"peak RSS max {max(peaks.values())} MiB per run; daemon {daemon_figures['peak_mib']} MiB"
    figures.rows = f"{quarantined_total} records quarantined with reasons"
    figures.note(
        outcome_by_case=outcomes,
        peak_rss_mib_by_case=peaks,
        long_running_runs=daemon_figures["runs"],
        wrong=wrong,
    )

    assert not wrong, "\n".join(wrong)
    assert daemon_figures["restarts"] == 0 and daemon_figures["alive"] and daemon_figures["code"] == 0
    assert daemon_figures["peak_mib"] <= MEMORY_BOUND_MIB
    assert len(set(served)) == len(CYCLE), "the daemon met every hostile snapshot"
    figures.passed()


def _outcome(result: OnceResult) -> str:
    if result.summary is None:
        return f"exit {result.code}, no summary"
    text = f"exit {result.code} {result.summary['status']}"
    if result.summary.get("error"):
        text += f" ({str(result.summary['error'])[:80]})"
    return text


def _judge(name: str, outcome: str, error: str, result: OnceResult) -> list[str]:
    problems = []
    if "Traceback" in result.stderr:
        problems.append("a traceback in the logs")
    if result.summary is None:
        return [*problems, f"exit {result.code} without a summary line"]
    status = result.summary["status"]
    if outcome == "failed":
        if result.code != 1 or status != "failed":
            problems.append(f"exit {result.code} {status}, expected a failed run")
        elif error not in str(result.summary.get("error")):
            problems.append(f"error {result.summary.get('error')!r} does not name {error!r}")
    elif result.code not in (0, 4) or status not in ("ok", "partial"):
        problems.append(f"exit {result.code} {status}, expected the records stored")
    if "internal error" in str(result.summary.get("error")):
        problems.append("a bug (internal error)")
    return problems


def _long_running(suite: Suite, mysql: MysqlServer, database: str, url: str) -> dict[str, object]:
    """`run --mode syncer` against a provider answering a different hostile body at every snapshot."""
    env = suite.env(
        mysql,
        database,
        **ports("METRICS_PORT"),
        PROVIDER_URL=url,
        PROVIDER_PAGE_SIZE="0",
        PROVIDER_MAX_RETRIES="1",
        PROVIDER_RETRY_MAX_WAIT_S="0.1",
        PROVIDER_MAX_BODY_BYTES=str(48 * MB),
        SYNC_INTERVAL_S="0.2",
        SYNC_BATCH_SIZE="500",
    )
    peak = 0
    with suite.daemon("s8", "syncer-cycle", ["run", "--mode", "syncer"], env) as daemon:
        daemon.wait_ready()
        deadline = time.monotonic() + 240

        def enough() -> bool:
            nonlocal peak
            peak = max(peak, rss_kib(daemon.pid))
            return int(scalar(mysql, database, "SELECT COUNT(*) FROM sync_runs")) >= 2 * len(CYCLE)

        wait_until(enough, timeout=max(1.0, deadline - time.monotonic()), interval=0.2, what="two hostile cycles")
        hwm = vm_hwm_kib(daemon.pid)
        scrape = daemon.metrics()
        alive = daemon.alive()
        code, _ = daemon.stop()
    suite.dump(mysql, database, "s8-cycle")
    runs = dict(query(mysql, database, "SELECT status, COUNT(*) FROM sync_runs GROUP BY status"))
    return {
        "restarts": scrape.total("customers_mngr_actor_restarts_total"),
        "alive": alive,
        "code": code,
        "peak_mib": max(peak, hwm) // 1024,
        "runs": {str(k): int(v) for k, v in runs.items()},  # type: ignore[call-overload]
    }
