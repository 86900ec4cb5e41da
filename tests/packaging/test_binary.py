"""The PyInstaller binary (`make binary`): every command, the flow as three processes, no Python needed.

Builds dist/customers-mngr once per session with `make binary`, then runs it as the target
would: outside the virtualenv, against the real MariaDB, and inside a chroot of a debootstrap
minbase Debian that has no Python at all.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import aiohttp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from PyInstaller.archive.readers import CArchiveReader

from daemon import __version__
from daemon.db.migrate import latest_version
from tests.conftest import base_env
from tests.packaging import bases, flow
from tests.support.daemon_proc import DaemonProcess, free_port, wait_http
from tests.support.mysql import MysqlServer

pytestmark = [pytest.mark.binary, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "dist" / "customers-mngr-bundle"  # the one-dir bundle; dist/customers-mngr links to its executable
RECORDS = 120
SEED = 3
COMMANDS = ("run", "migrate", "check-config", "healthcheck", "version", "provider-mock")
# What the target has: no virtualenv, no PYTHONPATH, no Python on PATH.
BARE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture(scope="session")
def binary() -> Path:
    """dist/customers-mngr (the bundle's executable), built from this tree by `make binary`."""
    done = subprocess.run(
        ["make", "--no-print-directory", "binary"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    exe = ROOT / "dist" / "customers-mngr"
    assert exe.is_file() and os.access(exe, os.X_OK)
    assert exe.resolve() == BUNDLE / "customers-mngr"
    return exe


def _keys() -> dict[str, str]:
    def key() -> str:
        return base64.b64encode(secrets.token_bytes(32)).decode()

    return {"ENCRYPTION_KEYS": json.dumps({"bt-1": key()}), "ENCRYPTION_ACTIVE_KEY": "bt-1", "INDEX_KEY": key()}


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env={**BARE_ENV, **(env or {})}, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_command_runs_from_the_binary(binary: Path) -> None:
    """`version` names the version and the commit it was built from; every command answers --help."""
    head = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    done = _run([str(binary), "version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"customers-mngr {__version__} (commit {head}")
    for command in COMMANDS:
        helped = _run([str(binary), command, "--help"])
        assert helped.returncode == 0, (command, helped.stderr)
        assert f"usage: customers-mngr {command}" in helped.stdout


def test_compiled_modules_and_migrations_are_bundled(binary: Path) -> None:
    """Every compiled module of the runtime dependencies, and every migration, is inside the bundle.

    aiohttp, yarl, multidict, frozenlist and propcache fall back to pure Python without a word
    when their C module is missing: only their presence in the bundle shows the speedups ship.
    """
    internal = BUNDLE / "_internal"
    site = Path(aiohttp.__file__).resolve().parents[1]
    for package in ("aiohttp", "asyncmy", "cryptography", "frozenlist", "multidict", "propcache", "yarl"):
        # multidict ships a _testcapi module for its own tests; nothing imports it at run time.
        compiled = {p.relative_to(site) for p in (site / package).rglob("*.so") if not p.name.startswith("_test")}
        assert compiled, package
        missing = sorted(str(p) for p in compiled if not (internal / p).is_file())
        assert not missing, f"not bundled: {missing}"
    migrations = sorted((ROOT / "daemon" / "db" / "migrations").glob("*.sql"))
    assert migrations
    for sql in migrations:
        assert (internal / "daemon" / "db" / "migrations" / sql.name).read_bytes() == sql.read_bytes(), sql.name


def _runtime_import_names() -> set[str]:
    """Top-level import names of the project's runtime dependencies and theirs (no extras)."""
    by_dist: dict[str, set[str]] = {}
    for name, dists in metadata.packages_distributions().items():
        for dist in dists:
            by_dist.setdefault(canonicalize_name(dist), set()).add(name)
    todo = [Requirement(r) for r in metadata.requires("customers-mngr") or []]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in metadata.requires(name) or [])
    return {"daemon"} | {imp for dist in seen for imp in by_dist.get(dist, set())}


def test_bundle_holds_only_the_runtime_dependencies(binary: Path) -> None:
    """No development package leaks into the binary through an optional import (e.g. structlog -> rich)."""
    pyz = CArchiveReader(str(BUNDLE / "customers-mngr")).open_embedded_archive("PYZ.pyz")
    tops = {name.split(".")[0] for name in pyz.toc}
    third_party = {t for t in tops if t not in sys.stdlib_module_names and not t.startswith("_")}
    assert {"aiohttp", "asyncmy", "cryptography", "structlog", "prometheus_client", "tenacity"} <= third_party
    assert third_party <= _runtime_import_names(), sorted(third_party - _runtime_import_names())


def test_binary_carries_the_migrations(binary: Path, mysql: MysqlServer, fresh_db) -> None:  # type: ignore[no-untyped-def]
    """`migrate` from the binary creates the schema from the SQL files packed inside it."""
    database = fresh_db()
    done = _run([str(binary), "migrate"], {**base_env(mysql, database), **_keys()})
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    rows = mysql.execute("SELECT MAX(version) FROM schema_migrations", database=database)
    assert rows[0][0] == latest_version() >= 1


def test_bad_config_exits_2_with_one_line(binary: Path) -> None:
    """A configuration error from the binary is one line and exit 2, as from the source."""
    done = _run([str(binary), "check-config"], {"APP_ENV": "production"})
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "configuration error" in done.stderr


@pytest.fixture
def three_processes(binary: Path, mysql: MysqlServer, fresh_db, tmp_path: Path) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Simulator, syncer and api: three processes of the binary on one fresh database."""
    database = fresh_db()
    ports = {"api": free_port(), "metrics": free_port(), "provider": free_port()}
    env = {
        **base_env(mysql, database),
        **_keys(),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(ports["api"]),
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": str(ports["metrics"]),
        "PROVIDER_URL": f"http://127.0.0.1:{ports['provider']}/api/v1/usuarios",
        "SYNC_INTERVAL_S": "5",
        "SHUTDOWN_TIMEOUT_S": "8",
    }
    procs: dict[str, DaemonProcess] = {}
    command = [str(binary)]
    try:
        args = ["provider-mock", "--host", "127.0.0.1", "--port", str(ports["provider"])]
        args += ["--records", str(RECORDS), "--seed", str(SEED)]
        procs["provider"] = DaemonProcess(args, BARE_ENV, command=command, log_path=tmp_path / "provider.log")
        wait_http(f"http://127.0.0.1:{ports['provider']}/health", proc=procs["provider"].proc)
        for mode in ("syncer", "api"):
            procs[mode] = DaemonProcess(
                ["run", "--mode", mode],
                {**BARE_ENV, **env, "MODE": mode},
                command=command,
                log_path=tmp_path / f"{mode}.log",
            )
        wait_http(f"http://127.0.0.1:{ports['metrics']}/ready", proc=procs["syncer"].proc)
        wait_http(f"http://127.0.0.1:{ports['api']}/ready", proc=procs["api"].proc)
        yield {"procs": procs, "ports": ports, "env": env, "database": database}
    finally:
        for proc in procs.values():
            proc.ensure_dead()


def test_flow_as_three_processes(three_processes: dict[str, object], mysql: MysqlServer) -> None:
    """Simulator -> syncer -> DB -> API per role through the binary; probes pass; SIGTERM exits 0 fast."""
    procs: dict[str, DaemonProcess] = three_processes["procs"]  # type: ignore[assignment]
    ports: dict[str, int] = three_processes["ports"]  # type: ignore[assignment]
    env: dict[str, str] = three_processes["env"]  # type: ignore[assignment]
    api_url = f"http://127.0.0.1:{ports['api']}"
    flow.check_ops(api_url, where="api")
    flow.check_ops(f"http://127.0.0.1:{ports['metrics']}", where="syncer")
    binary = str(ROOT / "dist" / "customers-mngr")
    for mode in ("syncer", "api"):  # the container health check, as the image runs it
        assert _run([binary, "healthcheck"], {**env, "MODE": mode}).returncode == 0, mode
    database = str(three_processes["database"])
    flow.check_synced_rows(
        lambda: int(mysql.execute("SELECT COUNT(*) FROM customers", database=database)[0][0]), RECORDS
    )
    flow.check_stored_encrypted(
        env["PROVIDER_URL"],
        RECORDS,
        lambda cid: mysql.execute(f"SELECT * FROM customers WHERE id = {cid:d}", database=database)[0],
    )
    counts = flow.check_flow(api_url=api_url, provider_url=env["PROVIDER_URL"], records=RECORDS)
    assert counts == {"viewer": RECORDS, "analyst": RECORDS, "admin": RECORDS}
    for name in ("api", "syncer", "provider"):
        code, seconds = procs[name].stop(timeout=15)
        assert code == 0, (name, procs[name].output.decode(errors="replace")[-2000:])
        assert seconds < 10, (name, seconds)


@pytest.fixture(scope="session")
def minbase_root(tmp_path_factory: pytest.TempPathFactory, binary: Path) -> Iterator[Path]:
    """A debootstrap minbase Debian (cached tarball) with dist/customers-mngr in /opt and no Python."""
    if os.geteuid() != 0:
        pytest.skip("chroot and debootstrap need root")
    root = bases.extract(bases.ensure_base("minbase"), tmp_path_factory.mktemp("minbase") / "root")
    shutil.copytree(BUNDLE, root / "opt" / "customers-mngr", symlinks=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_binary_runs_in_a_debian_without_python(minbase_root: Path, mysql: MysqlServer, fresh_db) -> None:  # type: ignore[no-untyped-def]
    """In a chroot of minbase Debian (no Python) the binary migrates, serves /ready, and exits 0 on SIGTERM."""
    for python in ("usr/bin/python3", "usr/bin/python3.11", "usr/lib/python3.11", "usr/local/bin/python3"):
        assert not (minbase_root / python).exists(), python
    chrooted = ["chroot", str(minbase_root), "/opt/customers-mngr/customers-mngr"]
    version = _run([*chrooted, "version"])
    assert version.returncode == 0 and version.stdout.startswith(f"customers-mngr {__version__}"), version.stderr
    port = free_port()
    env = {**BARE_ENV, **base_env(mysql, fresh_db()), **_keys(), "API_HOST": "127.0.0.1", "API_PORT": str(port)}
    with DaemonProcess(["run", "--mode", "all"], env, command=chrooted) as daemon:
        wait_http(f"http://127.0.0.1:{port}/ready", proc=daemon.proc, timeout=60)
        flow.check_ops(f"http://127.0.0.1:{port}", where="chroot")
        code, seconds = daemon.stop(timeout=15)
        assert code == 0, daemon.output.decode(errors="replace")[-2000:]
        assert seconds < 10
