"""Start-up to /health and /ready, and the sizes of what packaging ships.

`startup_to_health_s` / `startup_to_ready_s` time the built binary
(`dist/customers-mngr`: the full bench rebuilds it with `make binary`, so it is
this commit's; bench-quick times it as found) from exec to the first 200 of `/health`
(liveness: nothing touched) and of `/ready` (the DB answers, the schema is
current), in `run --mode api` against a migrated local database. The same is
measured with `python -m daemon` for context. `image_size_mb` comes from a
container engine (`docker`/`podman image inspect`) when one is installed and
the image is present, else from what `make image-test` recorded in
`packaging/README.md`; the full bench runs `make image-test` itself (packaging's
build-and-run test with its own private engine) and takes the size it prints.
Which source was used is said in the figure's note.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.bench.context import Context
from tests.bench.harness import ROOT
from tests.bench.procs import free_port, http_status, python

__all__ = ("image_size", "run_startup_phase")

BINARY = ROOT / "dist" / "customers-mngr"
IMAGES = ("customers-mngr:local", "customers-mngr:latest")  # what `make image-test` tags, then the usual
_POLL_S = 0.005
_FROM_README = (
    "as `make image-test` measured it (`docker image ls`), recorded in packaging/README.md "
    "(no engine holding the image here)"
)


def _time_start(ctx: Context, cmd: Sequence[str], database: str) -> tuple[float, float]:
    """(seconds to /health 200, seconds to /ready 200) from exec."""
    port = free_port()
    env = ctx.daemon_env(database, API_PORT=str(port), API_HOST="127.0.0.1", METRICS_PORT=str(free_port()))
    log = (ctx.work / "logs").joinpath("startup.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([*cmd, "run", "--mode", "api"], cwd=ROOT, env=env, stdout=out, stderr=out)
        try:
            health = _until(f"http://127.0.0.1:{port}/health", started, proc)
            ready = _until(f"http://127.0.0.1:{port}/ready", started, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return health, ready


def _until(url: str, started: float, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> float:
    while time.perf_counter() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode} before {url} answered 200")
        if http_status(url, timeout=1.0) == 200:
            return time.perf_counter() - started
        time.sleep(_POLL_S)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s}s")


def _make_has(target: str) -> bool:
    out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    return out.returncode == 0


def _binary(ctx: Context) -> tuple[Path | None, str]:
    """The binary to time: built now by the full bench (so it is this commit's), else as found."""
    found = "dist/customers-mngr as found (bench-quick does not rebuild it)"
    if not ctx.sizes.build_binary:
        if BINARY.exists():
            return BINARY, found
        return None, "no dist/customers-mngr (bench-quick does not build it: run `make binary` or `make bench`)"
    if not _make_has("binary"):
        return (BINARY, "dist/customers-mngr as found") if BINARY.exists() else (None, "no `make binary` target")
    ctx.log("building the binary: make binary")
    out = subprocess.run(["make", "binary"], cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    if out.returncode != 0 or not BINARY.exists():
        return None, f"`make binary` failed ({out.returncode}): {out.stderr.strip()[-200:]}"
    return BINARY, "built by `make binary` in this run"


def run_startup_phase(ctx: Context, database: str) -> None:
    sizes, report = ctx.sizes, ctx.report
    for run in range(1, sizes.runs + 1):
        ctx.log(f"start-up run {run}/{sizes.runs}: python -m daemon")
        health, ready = _time_start(ctx, [*python(), "-m", "daemon"], database)
        report.add("startup_to_health_python_s", health)
        report.add("startup_to_ready_python_s", ready)
    binary, how = _binary(ctx)
    if binary is None:
        report.not_measured("startup_to_health_s", how)
        report.not_measured("startup_to_ready_s", how)
        report.not_measured("binary_size_mb", how)
    else:
        for run in range(1, sizes.runs + 1):
            ctx.log(f"start-up run {run}/{sizes.runs}: {binary.relative_to(ROOT)}")
            health, ready = _time_start(ctx, [str(binary)], database)
            report.add("startup_to_health_s", health)
            report.add("startup_to_ready_s", ready)
        report.note("startup_to_health_s", f"{how}; `run --mode api`, exec to first 200")
        report.note("startup_to_ready_s", f"{how}; `run --mode api`, DB up and migrated")
        size, what = binary_size(binary)
        report.add("binary_size_mb", size / 1e6)
        report.note("binary_size_mb", f"{what} (MB = 10^6 bytes)")
    value, how = _image_test(ctx) if ctx.sizes.build_binary and _make_has("image-test") else (None, "")
    if value is None:
        value, how = image_size()
    if value is None:
        report.not_measured("image_size_mb", how)
    else:
        report.add("image_size_mb", value)
        report.note("image_size_mb", how)


def binary_size(binary: Path) -> tuple[int, str]:
    """Bytes of what has to be shipped: the file, or the whole one-dir bundle a symlink points into."""
    real = binary.resolve()
    bundle = real.parent
    if (bundle / "_internal").is_dir():
        total = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file() and not f.is_symlink())
        return total, f"the one-dir bundle {bundle.relative_to(ROOT) if bundle.is_relative_to(ROOT) else bundle}/"
    return real.stat().st_size, "dist/customers-mngr"


def _image_test(ctx: Context) -> tuple[float | None, str]:
    """Build and run the image with packaging's `make image-test` (its own private engine); the size it reports."""
    ctx.log("building and testing the image: make image-test (its own engine)")
    try:
        out = subprocess.run(
            ["make", "--no-print-directory", "image-test"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, ""
    ctx.report.details["image_test_exit"] = out.returncode
    value = parse_image_test(out.stdout)
    if value is None:
        return None, ""
    return value, f"`docker image ls` inside `make image-test` in this run (exit {out.returncode}; MB = 10^6 bytes)"


def parse_image_test(output: str) -> float | None:
    """MB from `make image-test`'s figures line: `image size: 42.9MB (docker image ls; 42944906 bytes)`."""
    match = re.search(r"image size:.*?\(docker image ls; (\d+) bytes\)", output)
    return None if match is None else int(match.group(1)) / 1e6


def image_size() -> tuple[float | None, str]:
    """(MB, where it comes from), or (None, why not)."""
    for engine in ("docker", "podman"):
        if not shutil.which(engine):
            continue
        for image in IMAGES:
            try:
                out = subprocess.run(
                    [engine, "image", "inspect", image, "--format", "{{.Size}}"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                break
            if out.returncode == 0 and out.stdout.strip().isdigit():
                return int(out.stdout.strip()) / 1e6, f"`{engine} image inspect {image}` (MB = 10^6 bytes)"
    readme = ROOT / "packaging" / "README.md"
    if readme.exists():
        for line in readme.read_text().splitlines():
            if "image-test" not in line or "size" not in line.lower():
                continue
            exact = re.search(r"\(([\d,]+) bytes\)", line)
            if exact:
                return int(exact.group(1).replace(",", "")) / 1e6, _FROM_README
            rounded = re.search(r"([\d.]+)\s*MB\b", line)
            if rounded:
                return float(rounded.group(1)), _FROM_README
    return None, "no container engine with the image here, and packaging/README.md records no image size yet"
