# ruff: noqa: S603, S607 - a developer tool that runs the binary and system tools it names
"""Measure PyInstaller's one-file and one-dir layouts of the binary: `python packaging/measure.py`.

For each layout: build it (packaging/build.sh), then measure
- size on disk (apparent bytes of the file or folder);
- `version` wall time (what every container health check costs: the binary starts, imports
  everything, answers) — median of RUNS;
- start to `GET /health` 200 for `run --mode api` on a migrated database — median and max of RUNS;
- SIGTERM once healthy: exit code and seconds to exit;
- `version` with a read-only root filesystem (a private mount namespace remounting / read-only,
  as `docker run --read-only` does), then again with a tmpfs on /tmp.
Prints a Markdown table (packaging/README.md has the figures and the choice). Needs root (for
the mount namespace), the virtualenv's PyInstaller and the local MariaDB (TEST_DATABASE_URL).
Leaves dist/ with the default (one-dir) build.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "measure"
RUNS = int(os.environ.get("MEASURE_RUNS", "10"))
SERVER = os.environ.get("TEST_DATABASE_URL", "mysql://root@127.0.0.1:3306").rstrip("/")


def build(layout: str) -> Path:
    env = {**os.environ, "CM_PYI_LAYOUT": layout}
    subprocess.run([str(ROOT / "packaging" / "build.sh"), sys.executable], cwd=ROOT, env=env, check=True)
    target = OUT / layout
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if layout == "onedir":
        shutil.copytree(ROOT / "dist" / "customers-mngr-bundle", target / "customers-mngr", symlinks=True)
        return target / "customers-mngr" / "customers-mngr"
    shutil.copy2(ROOT / "dist" / "customers-mngr", target / "customers-mngr")
    return target / "customers-mngr"


def size(exe: Path, layout: str) -> int:
    if layout == "onefile":
        return exe.stat().st_size
    return sum(p.stat().st_size for p in exe.parent.rglob("*") if p.is_file() and not p.is_symlink())


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:  # noqa: S310 - loopback
            return int(response.status) == 200
    except OSError:
        return False


def start_to_health(exe: Path, env: dict[str, str]) -> tuple[float, int, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), "run", "--mode", "api"],
        env={**env, "API_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not health_ok(url):
            if proc.poll() is not None or time.perf_counter() - started > 30:
                raise RuntimeError(f"{exe} did not serve /health (exit {proc.returncode})")
            time.sleep(0.005)
        ready = time.perf_counter() - started
        stopping = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        return ready, code, time.perf_counter() - stopping
    finally:
        if proc.poll() is None:
            proc.kill()


def read_only(exe: Path, *, tmpfs: bool) -> str:
    script = (
        "mount -o remount,bind,ro / && " + ("mount -t tmpfs tmpfs /tmp && " if tmpfs else "") + f"exec {exe} version"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return "works"
    return f"fails: {(done.stderr.strip().splitlines() or ['exit ' + str(done.returncode)])[-1][:70]}"


def main() -> int:
    database = f"measure_{uuid.uuid4().hex[:10]}"
    env = {"PATH": "/usr/bin:/bin", "APP_ENV": "development", "DATABASE_URL": f"{SERVER}/{database}"}
    env |= {"LOG_LEVEL": "warning", "DEV_KEY_FILE": str(OUT / "dev-keys.json"), "API_HOST": "127.0.0.1"}
    rows = []
    try:
        for layout in ("onefile", "onedir"):
            exe = build(layout)
            subprocess.run([str(exe), "migrate"], env=env, check=True, capture_output=True)
            versions = [timed([str(exe), "version"], env) for _ in range(RUNS)]
            starts = [start_to_health(exe, env) for _ in range(RUNS)]
            ready = [s[0] for s in starts]
            rows.append(
                (
                    layout,
                    f"{size(exe, layout) / 1e6:.1f} MB",
                    f"{statistics.median(versions):.2f} s",
                    f"{statistics.median(ready):.2f} s (max {max(ready):.2f})",
                    ", ".join(sorted({f"exit {s[1]}" for s in starts})) + f" in ≤ {max(s[2] for s in starts):.2f} s",
                    read_only(exe, tmpfs=False),
                    read_only(exe, tmpfs=True),
                )
            )
    finally:
        subprocess.run(
            ["mysql", "-h127.0.0.1", "-uroot", "-e", f"DROP DATABASE IF EXISTS `{database}`"],
            capture_output=True,
            check=False,
        )
        build("onedir")
    head = ("layout", "size", "`version`", "start → /health 200", "SIGTERM", "read-only /", "read-only / + tmpfs /tmp")
    print(f"runs per figure: {RUNS}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
