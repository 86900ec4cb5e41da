"""The real process: starts, answers healthcheck, stops on SIGTERM with 0; exit codes."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from tests.conftest import base_env
from tests.support.daemon_proc import DaemonProcess, free_port, http_get, wait_http
from tests.support.mysql import MysqlServer
from tests.support.tcp_proxy import threaded_proxy

pytestmark = pytest.mark.slow


def test_run_all_health_healthcheck_and_sigterm(mysql: MysqlServer, session_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`run --mode all` serves /health and /ready, `healthcheck` passes, SIGTERM exits 0 and the process is gone."""
    port = free_port()
    env = {**base_env(mysql, session_db), "API_PORT": str(port), "DEV_KEY_FILE": str(tmp_path / "k.json")}
    with DaemonProcess(["run", "--mode", "all"], env) as daemon:
        wait_http(f"http://127.0.0.1:{port}/health", proc=daemon.proc)
        wait_http(f"http://127.0.0.1:{port}/ready", proc=daemon.proc)
        check = DaemonProcess(["healthcheck"], {**env, "MODE": "all"})
        assert check.wait(30) == 0
        code, seconds = daemon.stop()
        assert code == 0, daemon.output.decode()[-3000:]
        assert seconds < 20
        assert daemon.proc.poll() is not None
        with pytest.raises(ProcessLookupError):
            os.kill(daemon.proc.pid, 0)
    assert b"daemon_stopped" in daemon.output


def test_syncer_mode_serves_probes_on_metrics_port(mysql: MysqlServer, session_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """In syncer mode /health, /ready and /metrics answer on METRICS_PORT."""
    port = free_port()
    env = {**base_env(mysql, session_db), "METRICS_PORT": str(port), "DEV_KEY_FILE": str(tmp_path / "k.json")}
    with DaemonProcess(["run", "--mode", "syncer"], env) as daemon:
        wait_http(f"http://127.0.0.1:{port}/ready", proc=daemon.proc)
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"customers_mngr_actor_up" in body
        assert DaemonProcess(["healthcheck"], {**env, "MODE": "syncer"}).wait(30) == 0
        assert daemon.stop()[0] == 0


def test_healthcheck_fails_when_nothing_listens() -> None:
    """`healthcheck` exits 1 with one line when /health does not answer."""
    check = DaemonProcess(["healthcheck", "--url", f"http://127.0.0.1:{free_port()}/health", "--timeout", "1"], {})
    assert check.wait(30) == 1
    assert len(check.output.decode().strip().splitlines()) == 1


def test_unreachable_db_exits_3_with_one_line(mysql: MysqlServer, session_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With the DB unreachable past DB_CONNECT_TIMEOUT_S the process exits 3, no traceback."""
    env = {
        **base_env(mysql, session_db, port=free_port()),
        "DB_CONNECT_TIMEOUT_S": "1",
        "DEV_KEY_FILE": str(tmp_path / "k.json"),
    }
    proc = DaemonProcess(["migrate"], env)
    assert proc.wait(30) == 3
    out = proc.output.decode()
    assert "Traceback" not in out
    assert "not ready after 1s" in out


def test_readiness_retry_in_a_real_process(mysql: MysqlServer, session_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The process waits for a DB that comes up late (through a proxy) and then serves."""
    port = free_port()
    with threaded_proxy(mysql.host, mysql.port) as proxy:
        db_port = proxy.reserve_port()
        env = {
            **base_env(mysql, session_db, port=db_port),
            "API_PORT": str(port),
            "DEV_KEY_FILE": str(tmp_path / "k.json"),
        }
        with DaemonProcess(["run", "--mode", "all"], env) as daemon:
            time.sleep(2)
            assert daemon.proc.poll() is None, "still waiting, not dead"
            proxy.start()
            wait_http(f"http://127.0.0.1:{port}/ready", proc=daemon.proc, timeout=30)
            assert daemon.stop()[0] == 0
        assert b"db_not_ready" in daemon.output


def test_sigint_also_stops_cleanly(mysql: MysqlServer, session_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C (SIGINT) stops like SIGTERM, exit 0."""
    port = free_port()
    env = {**base_env(mysql, session_db), "API_PORT": str(port), "DEV_KEY_FILE": str(tmp_path / "k.json")}
    with DaemonProcess(["run", "--mode", "api"], env) as daemon:
        wait_http(f"http://127.0.0.1:{port}/health", proc=daemon.proc)
        daemon.signal(signal.SIGINT)
        assert daemon.wait(20) == 0


def test_version_and_help() -> None:
    """`version` prints the version and commit; every command has --help."""
    proc = DaemonProcess(["version"], {})
    assert proc.wait(30) == 0 and proc.output.startswith(b"customers-mngr ")
    for command in ("run", "migrate", "check-config", "healthcheck", "version"):
        helped = DaemonProcess([command, "--help"], {})
        assert helped.wait(30) == 0, command
        assert b"usage: customers-mngr " + command.encode() in helped.output
    assert sys.executable
