"""The API figures and their references: three servers, one load generator, runs interleaved.

Servers (each its own process, all on 127.0.0.1): the daemon (`run --mode api`,
APP_ENV=development for the demo tokens) and `bare_api` on the database the
daemon's sync wrote (or, without a syncer on this branch, the one
`limit_upsert` wrote with the same development keys), `predecessor_api` on the
table `predecessor_sync` wrote. Load: 32 connections for `api_duration_s`,
`wrk --latency` (or the fallback client). Each round runs every target once,
in the same order; figures are the medians over rounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.context import Context
from tests.bench.harness import median
from tests.bench.loadgen import Load, loadgen_name, run_load
from tests.bench.procs import Server, base_env, free_port, http_status, python

__all__ = ("run_api_phase",)

CONNECTIONS = 32
_BEARER = "Bearer {}-token"


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    server: str
    path: str
    role: str | None = None
    random_ids: int = 0
    rps_figure: str | None = None
    p99_figure: str | None = None


def _targets(records: int) -> list[Target]:
    return [
        Target("predecessor_page", "predecessor", "/clientes", "analyst", rps_figure="predecessor_api_page_rps"),
        Target("bare_page", "bare", "/page", rps_figure="bare_api_page_rps", p99_figure="bare_api_page_p99_ms"),
        Target("bare_item", "bare", "/item/", random_ids=records, rps_figure="bare_api_item_rps"),
        Target(
            "analyst_page",
            "daemon",
            "/clientes?limit=100",
            "analyst",
            rps_figure="api_analyst_page_rps",
            p99_figure="api_page_p99_ms",
        ),
        Target("admin_page", "daemon", "/clientes?limit=100", "admin", rps_figure="api_admin_page_rps"),
        Target("item", "daemon", "/clientes/", "viewer", random_ids=records, rps_figure="api_item_rps"),
        Target("health", "daemon", "/health", rps_figure="api_health_rps"),
    ]


def _headers(target: Target) -> dict[str, str]:
    return {"Authorization": _BEARER.format(target.role)} if target.role else {}


def run_api_phase(ctx: Context, kept: dict[str, str]) -> None:
    data_db = kept.get("daemon") or kept["limit"]
    source = "the daemon's synced DB" if "daemon" in kept else "the DB limit_upsert wrote (no syncer on this branch)"
    ports = {"daemon": free_port(), "bare": free_port(), "predecessor": free_port()}
    servers = _servers(ctx, ports, data_db, kept["predecessor"])
    try:
        for name, server in servers.items():
            server.wait_ready(f"http://127.0.0.1:{ports[name]}/health", timeout_s=90)
        targets = _targets(ctx.sizes.records)
        missing = _unavailable(ports, targets)
        ctx.log(f"API phase on {source}; load generator: {loadgen_name()}; unavailable: {sorted(missing) or 'none'}")
        _rounds(ctx, ports, servers, [t for t in targets if t.key not in missing])
        for target in targets:
            if target.key in missing:
                for figure in (target.rps_figure, target.p99_figure):
                    if figure:
                        ctx.report.not_measured(figure, missing[target.key])
        ctx.report.details["api"] = {"connections": CONNECTIONS, "loadgen": loadgen_name(), "data": source}
    finally:
        for server in servers.values():
            server.stop()


def _servers(ctx: Context, ports: dict[str, int], data_db: str, predecessor_db: str) -> dict[str, Server]:
    logs = ctx.work / "logs"
    env = ctx.daemon_env(data_db, API_PORT=str(ports["daemon"]), API_HOST="127.0.0.1", METRICS_PORT=str(free_port()))
    bare = ["--port", str(ports["bare"]), "--database", ctx.db_url(data_db)]
    predecessor = ["--port", str(ports["predecessor"]), "--database", ctx.db_url(predecessor_db)]
    servers: dict[str, Server] = {}
    try:
        servers["daemon"] = Server("daemon-api", [*python(), "-m", "daemon", "run", "--mode", "api"], env, log_dir=logs)
        servers["bare"] = Server("bare-api", [*python(), "-m", "tests.bench.bare_api", *bare], base_env(), log_dir=logs)
        servers["predecessor"] = Server(
            "predecessor-api", [*python(), "-m", "tests.bench.predecessor_api", *predecessor], base_env(), log_dir=logs
        )
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


def _unavailable(ports: dict[str, int], targets: list[Target]) -> dict[str, str]:
    """Targets this branch does not serve yet (not a 200 on one request), with the reason."""
    missing: dict[str, str] = {}
    for target in targets:
        url = f"http://127.0.0.1:{ports[target.server]}{target.path}" + ("1" if target.random_ids else "")
        status = http_status(url, headers=_headers(target), timeout=10)
        if status != 200:
            missing[target.key] = f"GET {target.path} answered {status} on this branch"
    return missing


def _rounds(ctx: Context, ports: dict[str, int], servers: dict[str, Server], live: list[Target]) -> None:
    sizes, report = ctx.sizes, ctx.report
    for target in live:  # warm-up: pools, caches, first-call code paths
        _load(ctx, ports, target, duration_s=1)
    cpu_us: dict[str, list[float]] = {t.key: [] for t in live}
    loads: dict[str, list[Load]] = {t.key: [] for t in live}
    for run in range(1, sizes.runs + 1):
        ctx.log(f"API round {run}/{sizes.runs} ({len(live)} targets x {sizes.api_duration_s}s)")
        for target in live:
            server = servers[target.server]
            before = server.cpu_s()
            load = _load(ctx, ports, target, duration_s=sizes.api_duration_s)
            cpu_us[target.key].append((server.cpu_s() - before) / max(load.requests, 1) * 1e6)
            loads[target.key].append(load)
            ctx.detail(f"api_{target.key}", load.as_dict() | {"server_cpu_us_per_request": cpu_us[target.key][-1]})
            figures = [f for f in (target.rps_figure, target.p99_figure) if f]
            for figure in figures:
                report.add(figure, load.rps if figure == target.rps_figure else load.p99_ms)
            if load.errors > 0.01 * max(load.requests, 1):
                for figure in figures:
                    report.note(figure, f"{load.errors} of {load.requests} requests failed in a run")
    _cost_section(ctx, live, loads, cpu_us)


def _cost_section(
    ctx: Context, live: list[Target], loads: dict[str, list[Load]], cpu_us: dict[str, list[float]]
) -> None:
    """CPU of the serving process per request: what each answer costs, much less sensitive to load than req/s."""
    rows = [
        "| target | server | req/s | p99 ms | server CPU per request (µs) |",
        "|---|---|---:|---:|---:|",
    ]
    for target in live:
        rps = median([x.rps for x in loads[target.key]])
        p99 = median([x.p99_ms for x in loads[target.key]])
        cpu = median(cpu_us[target.key])
        rows.append(f"| `{target.key}` | {target.server} | {rps:,.0f} | {p99:.1f} | {cpu:,.0f} |")
    title = f"API cost per request ({CONNECTIONS} connections; medians; CPU of the server process only)"
    ctx.report.section(title, "\n".join(rows))


def _load(ctx: Context, ports: dict[str, int], target: Target, *, duration_s: int) -> Load:
    return run_load(
        f"http://127.0.0.1:{ports[target.server]}{target.path}",
        connections=CONNECTIONS,
        duration_s=duration_s,
        headers=_headers(target),
        random_ids=target.random_ids,
        work_dir=ctx.work,
    )
