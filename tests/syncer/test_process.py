"""The syncer as a real process: `sync --once` exit codes and JSON line, SIGTERM and kill -9 mid-run, `run`."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from daemon.config import Settings, load_settings
from daemon.crypto.keyring import load_keyring
from daemon.db.connect import open_database
from daemon.observability.metrics import Metrics
from daemon.provider.simulator import Fault, Simulator
from daemon.syncer.leader import Leadership
from daemon.syncer.runner import INTERRUPTED
from daemon.syncer.runs import ABANDONED_ERROR
from tests.conftest import base_env
from tests.support.daemon_proc import ROOT, DaemonProcess, free_port, wait_http
from tests.support.mysql import MysqlServer
from tests.support.simulator import provider_env, threaded_simulator
from tests.syncer.test_provider_sync import normalized, stored_state

pytestmark = pytest.mark.slow


def _env(mysql: MysqlServer, database: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**base_env(mysql, database), "DEV_KEY_FILE": str(tmp_path / "keys.json"), **extra}


def sync_once(env: dict[str, str], timeout: float = 60) -> tuple[int, list[str], str]:
    """Run `sync --once`; return (exit code, stdout lines, stderr)."""
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    done = subprocess.run(  # noqa: PLW1510 - the exit code is the subject
        [sys.executable, "-m", "daemon", "sync", "--once"],
        cwd=ROOT,
        env={**base, "PYTHONUNBUFFERED": "1", **env},
        capture_output=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout.decode().splitlines(), done.stderr.decode()


def _query(mysql: MysqlServer, database: str, sql: str) -> list[tuple[object, ...]]:
    return mysql.execute(sql, database=database)


def _wait_rows(mysql: MysqlServer, database: str, sql: str, at_least: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if int(_query(mysql, database, sql)[0][0]) >= at_least:  # type: ignore[call-overload]
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{sql} never reached {at_least}")


def test_sync_once_exit_codes_and_json_line(mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path) -> None:
    """0 ok, 4 partial, 1 failed: stdout is exactly one JSON summary line; logs go to stderr."""
    database = fresh_db()
    with threaded_simulator(records=40, seed=3) as sim:
        code, out, err = sync_once(_env(mysql, database, tmp_path, **provider_env(sim.url)))
        assert code == 0, err[-2000:]
        assert len(out) == 1
        summary = json.loads(out[0])
        assert summary["status"] == "ok" and summary["inserted"] == 40 and summary["run_id"] == 1
        assert "sync_run_finished" in err and "Traceback" not in err
        sim.bad_rate = 0.3
        code, out, _ = sync_once(_env(mysql, database, tmp_path, **provider_env(sim.url)))
        assert code == 4 and json.loads(out[0])["status"] == "partial" and json.loads(out[0])["rejected"] > 0
        sim.fail_page(1, Fault(status=503))
        code, out, err = sync_once(_env(mysql, database, tmp_path, **provider_env(sim.url)))
        assert code == 1 and len(out) == 1
        failed = json.loads(out[0])
        assert failed["status"] == "failed" and "page 1" in failed["error"] and sim.url not in failed["error"]
        assert "Traceback" not in err
    statuses = [r[0] for r in _query(mysql, database, "SELECT status FROM sync_runs ORDER BY id")]
    assert statuses == ["ok", "partial", "failed"]


def test_sync_once_while_another_process_leads(
    mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """With the writer lock held elsewhere, `sync --once` does nothing: a `skipped` line and exit 1."""
    database = fresh_db()
    env = _env(mysql, database, tmp_path, SIMULATOR_RECORDS="5")
    assert sync_once(env)[0] == 0  # creates the schema (and runs once)

    async def hold_and_run() -> tuple[int, list[str], str]:
        leader = Leadership(db_settings=make_settings(database).db, metrics=Metrics(CollectorRegistry()))
        assert await leader.acquire() is not None
        try:
            return await asyncio.to_thread(sync_once, env)
        finally:
            await leader.release()

    code, out, err = asyncio.run(hold_and_run())
    assert code == 1 and json.loads(out[0])["status"] == "skipped"
    assert "sync_run_skipped" in err
    assert _query(mysql, database, "SELECT COUNT(*) FROM sync_runs")[0][0] == 1


def _slow_simulator(records: int) -> Simulator:
    return Simulator(records=records, seed=21, slow_rate=1.0, slow_ms=150)


def test_sigterm_mid_run_stops_cleanly(mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path) -> None:
    """SIGTERM during a run of `run --mode syncer`: exit 0 within the budget, run recorded failed, lock free."""
    database = fresh_db()
    with threaded_simulator(_slow_simulator(400)) as sim:
        env = _env(mysql, database, tmp_path, METRICS_PORT=str(free_port()), SYNC_BATCH_SIZE="20")
        env.update(provider_env(sim.url))
        with DaemonProcess(["run", "--mode", "syncer"], env) as proc:
            _wait_rows(mysql, database, "SELECT COUNT(*) FROM customers", 20)
            code, seconds = proc.stop(timeout=30)
            assert code == 0, proc.output.decode()[-3000:]
            assert seconds < 20
        output = proc.output.decode()
        assert "sync_leadership_released" in output and "Traceback" not in output
    rows = _query(mysql, database, "SELECT status, error, finished_at IS NOT NULL FROM sync_runs")
    assert rows == [("failed", INTERRUPTED, 1)]
    stored = _query(mysql, database, "SELECT COUNT(*) FROM customers")[0][0]
    assert 20 <= stored < 400 and stored % 20 == 0, "stopped mid-run; only whole batches are committed"  # type: ignore[operator]
    assert _query(mysql, database, "SELECT IS_FREE_LOCK(CONCAT('customers-mngr:syncer:', DATABASE()))") == [(1,)]


def test_kill_9_mid_run_then_a_new_run_converges(
    mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """kill -9 of `sync --once` mid-run; the next run converges: no duplicates, every value decrypts."""
    database = fresh_db()
    records = 300
    with threaded_simulator(_slow_simulator(records)) as sim:
        env = _env(mysql, database, tmp_path, SYNC_BATCH_SIZE="25", **provider_env(sim.url))
        with DaemonProcess(["sync", "--once"], env) as proc:
            _wait_rows(mysql, database, "SELECT COUNT(*) FROM customers", 50)
            proc.proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        partway = _query(mysql, database, "SELECT COUNT(*) FROM customers")[0][0]
        assert 0 < partway < records  # type: ignore[operator]
        assert _query(mysql, database, "SELECT status FROM sync_runs") == [("running",)]
        sim.slow_rate = 0.0
        sim.change([1, 2, 3])
        code, out, err = sync_once(env)
        assert code == 0, err[-3000:]
        summary = json.loads(out[0])
        assert summary["inserted"] + summary["updated"] + summary["unchanged"] == records
        expected = {i: normalized(r) for i, r in sim.expected().items()}
    runs = _query(mysql, database, "SELECT status, error FROM sync_runs ORDER BY id")
    assert runs == [("failed", ABANDONED_ERROR), ("ok", None)]
    assert _query(mysql, database, "SELECT COUNT(*), COUNT(DISTINCT id) FROM customers") == [(records, records)]

    async def decrypted() -> dict[int, dict[str, object]]:
        settings = load_settings(env, mode="syncer")
        ring = load_keyring(settings.crypto, production=False)
        async with open_database(settings.db, metrics=Metrics(CollectorRegistry()), create=False) as db:
            return await stored_state(db, ring)

    assert asyncio.run(decrypted()) == expected


def test_run_in_development_syncs_from_the_builtin_simulator(
    mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path
) -> None:
    """`run --mode all` with no PROVIDER_URL starts the simulator as an actor and the first run fills the table."""
    database = fresh_db()
    port = free_port()
    env = _env(mysql, database, tmp_path, API_PORT=str(port), SIMULATOR_RECORDS="75", SIMULATOR_SEED="4")
    with DaemonProcess(["run", "--mode", "all"], env) as proc:
        wait_http(f"http://127.0.0.1:{port}/ready", proc=proc.proc)
        _wait_rows(mysql, database, "SELECT COUNT(*) FROM sync_runs WHERE status = 'ok'", 1)
        assert proc.stop()[0] == 0
    output = proc.output.decode()
    assert "simulator_listening" in output and "sync_run_finished" in output, output[-6000:]
    assert _query(mysql, database, "SELECT COUNT(*) FROM customers")[0][0] == 75
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    started = [line for line in lines if line.get("event") == "sync_run_started"]
    finished = [line for line in lines if line.get("event") == "sync_run_finished"]
    assert len(started) == len(finished) >= 1, "one start and one summary line per run"
    assert finished[0]["inserted"] == 75 and finished[0]["status"] == "ok"


def test_sync_help_and_once_required() -> None:
    """`sync --help` documents the exit codes; `sync` without --once is a usage error (exit 2)."""
    helped = DaemonProcess(["sync", "--help"], {})
    assert helped.wait(30) == 0
    text = helped.output.decode()
    assert "usage: customers-mngr sync" in text and "4 partial" in text
    assert DaemonProcess(["sync"], {}).wait(30) == 2


def test_progress_line_on_a_terminal(mysql: MysqlServer, fresh_db: Callable[[], str], tmp_path: Path) -> None:
    """With stderr on a terminal, a self-rewriting progress line (pages, records, rate); stdout stays one line."""
    database = fresh_db()
    env = _env(mysql, database, tmp_path, SIMULATOR_RECORDS="300", PROVIDER_PAGE_SIZE="10", LOG_LEVEL="warning")
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "sync", "--once"],
            cwd=ROOT,
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=slave,
        )
        os.close(slave)
        terminal = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the process closed the terminal (EIO)
                break
            if not chunk:
                break
            terminal += chunk
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0
    assert len(out.decode().splitlines()) == 1 and json.loads(out)["inserted"] == 300
    text = terminal.decode()
    assert "\r\x1b[Ksync  pages " in text and "records 300" in text and "rec/s" in text
