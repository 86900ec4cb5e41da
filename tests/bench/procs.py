"""Processes of a benchmark: measured one-shot commands, long-running servers, the DB server's CPU.

Every measured command runs in its own process so its peak RSS (`ru_maxrss`
from wait4) and CPU time are its own, and every server (provider, the daemon's
API, the references) runs in its own process, loaded from yet another (wrk).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.bench.harness import ROOT

__all__ = (
    "DbCpu",
    "Measured",
    "Server",
    "base_env",
    "free_port",
    "http_status",
    "python",
    "run_measured",
)

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def python() -> list[str]:
    return [sys.executable]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for a child: PATH and the like, unbuffered Python, then `extra`."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


@dataclass(frozen=True, slots=True)
class Measured:
    """A finished command: exit code, output, wall and CPU seconds, peak RSS."""

    code: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    runq_s: float | None = None  # time runnable but waiting for a CPU (/proc/PID/schedstat), None if unknown

    def last_json(self) -> dict[str, object]:
        """The last stdout line that parses as a JSON object (a summary line)."""
        for raw in reversed(self.stdout.splitlines()):
            line = raw.strip()
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(line)
                    if isinstance(value, dict):
                        return value
        raise RuntimeError(f"no JSON summary (exit {self.code}); stderr tail: {self.stderr[-800:]}")


def run_measured(
    cmd: Sequence[str], env: Mapping[str, str], *, timeout_s: float, cwd: Path = ROOT, wrap: Sequence[str] = ()
) -> Measured:
    """Run `cmd` to its end (killed past `timeout_s`); its own rusage comes from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([*wrap, *cmd], cwd=cwd, env=dict(env), stdout=out, stderr=err)
        deadline = started + timeout_s
        runq: float | None = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            runq = _runq_wait(proc.pid) or runq  # the last reading before the exit is the total, within a poll
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            code=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            maxrss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            runq_s=runq,
        )


def http_status(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 2.0) -> int | None:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


class Server:
    """A long-running child (a server): started, awaited on a URL, stopped with SIGTERM."""

    def __init__(self, name: str, cmd: Sequence[str], env: Mapping[str, str], *, log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(list(cmd), cwd=ROOT, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, url: str, *, timeout_s: float = 60.0, status: int = 200) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.tail()}")
            if http_status(url, timeout=1.0) == status:
                return time.perf_counter() - started
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout_s}s; log: {self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_bytes()[-chars:].decode(errors="replace")
        return ""

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def cpu_s(self) -> float:
        return _proc_cpu(self.proc.pid) or 0.0

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _runq_wait(pid: int) -> float | None:
    """Seconds a live process has spent runnable but waiting for a CPU (scheduler statistics)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _proc_cpu(pid: int) -> float | None:
    """user + system CPU seconds of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15 of stat)


class DbCpu:
    """CPU seconds used by the local MySQL/MariaDB server process (None when it is not visible here)."""

    def __init__(self) -> None:
        self.pid = _find_db_pid()

    def read(self) -> float | None:
        return None if self.pid is None else _proc_cpu(self.pid)

    @contextlib.contextmanager
    def span(self) -> Iterator[list[float | None]]:
        """Yields a one-item list that holds the DB CPU seconds of the block once it ends."""
        box: list[float | None] = [None]
        before = self.read()
        try:
            yield box
        finally:
            after = self.read()
            box[0] = None if before is None or after is None else after - before


def _find_db_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                return int(entry.name)
    return None
