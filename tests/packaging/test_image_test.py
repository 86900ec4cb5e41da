"""`make image-test` on bad input: one line naming the failed step and why, nothing left running.

The passing run is `make image-test` itself (part of `make test`); these run the same script
into the three failures its users meet: a port already taken, a debootstrap that cannot
reach its mirror, and no permission to run a container engine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.engine import _pids_referring_to

pytestmark = [pytest.mark.image, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _image_test(tmp_path: Path, env: dict[str, str], *, prefix: list[str] | None = None) -> tuple[int, str, Path]:
    run_dir = Path(f"/tmp/cmit-t{os.getpid()}-{tmp_path.name[-6:]}")
    full_env = {
        **os.environ,
        "CM_IMAGE_TEST_RUN_DIR": str(run_dir),
        "CM_IMAGE_TEST_LOG_DIR": str(tmp_path / "logs"),
        **env,
    }
    done = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "tests.packaging.image_test"],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done.returncode, done.stderr, run_dir


def _assert_nothing_left(run_dir: Path) -> None:
    assert _pids_referring_to(run_dir) == [], "an engine or container process is still running"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(run_dir) not in mounts, "a mount of the run is left"
    assert not run_dir.exists(), "the run folder is left"


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_port_in_use_fails_at_preflight_in_one_line(tmp_path: Path) -> None:
    """A port the test needs is taken: one line names the step, the port and why; nothing is started."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, stderr, run_dir = _image_test(tmp_path, {"CM_IMAGE_TEST_API_PORT": str(port)})
    line = _one_line(stderr)
    assert code == 1
    assert line.startswith("image-test: FAILED at preflight:") and f"port {port}" in line and "in use" in line
    _assert_nothing_left(run_dir)


@pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd and debootstrap: needs root")
def test_failed_debootstrap_fails_at_bases_and_stops_the_engine(tmp_path: Path) -> None:
    """debootstrap cannot reach its mirror: one line names the bases step; the engine it started is gone."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{closed.getsockname()[1]}/debian"
    cache = tmp_path / "empty-cache"
    code, stderr, run_dir = _image_test(tmp_path, {"CM_CACHE_DIR": str(cache), "CM_DEBIAN_MIRROR": mirror})
    line = _one_line(stderr)
    assert code == 1
    assert line.startswith("image-test: FAILED at bases: debootstrap of minbase exited"), line
    _assert_nothing_left(run_dir)
    assert not list(cache.glob("*.tar")), "a failed debootstrap must not leave a cached base"
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_no_engine_permission_fails_at_engine_in_one_line(tmp_path: Path) -> None:
    """Without the capabilities a container engine needs: one line names the engine step and the reason."""
    no_caps = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]
    code, stderr, run_dir = _image_test(tmp_path, {}, prefix=no_caps)
    line = _one_line(stderr)
    assert code == 1
    assert line.startswith("image-test: FAILED at engine: dockerd"), line
    assert "not permitted" in line or "permission" in line, line
    _assert_nothing_left(run_dir)
