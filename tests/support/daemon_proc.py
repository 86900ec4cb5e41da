"""Running the real daemon as a subprocess: start, wait for health, signal, collect output."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

__all__ = ("DaemonProcess", "free_port", "http_get", "wait_http")

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def wait_http(
    url: str, *, status: int = 200, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> float:
    """Poll until `url` answers `status`; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        with contextlib.suppress(OSError):
            if http_get(url, timeout=1.0)[0] == status:
                return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s")


class DaemonProcess:
    """`python -m daemon <args>` (or another command) with a controlled environment."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        command: Sequence[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR", "PYTHONPATH")}
        full_env = {**base, "PYTHONUNBUFFERED": "1", **env}
        self.log_path = log_path
        self._out = open(log_path, "wb") if log_path else subprocess.PIPE  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "daemon"]), *args],
            cwd=ROOT,
            env=full_env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self.output = b""

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        self.proc.kill()

    def wait(self, timeout: float = 30.0) -> int:
        try:
            if self._out is subprocess.PIPE:
                out, _ = self.proc.communicate(timeout=timeout)
                self.output = out or b""
            else:
                self.proc.wait(timeout=timeout)
        finally:
            if self._out is not subprocess.PIPE:
                self._out.close()
                if self.log_path:
                    self.output = self.log_path.read_bytes()
        return int(self.proc.returncode)

    def stop(self, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; return (exit code, seconds to exit)."""
        started = time.monotonic()
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        return code, time.monotonic() - started

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(Exception):
                self.wait(10)

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ensure_dead()


@contextlib.contextmanager
def daemon(args: Sequence[str], env: Mapping[str, str], **kwargs: object) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(args, env, **kwargs)  # type: ignore[arg-type]
    try:
        yield proc
    finally:
        proc.ensure_dead()
