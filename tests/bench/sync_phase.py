"""The sync figures and their references, run by run side by side, plus peak RSS and the scaling table.

Per run (repeated `runs` times, interleaved so drift on a shared machine hits
every contender alike), each on its own fresh database:
  predecessor_sync first load, then its re-sync (same data);
  limit_upsert (rows prepared before the clock);
  the daemon's `sync --once`: first load (simulator → empty DB), re-sync with
  nothing changed, re-sync with 10% of the records changed.
Then the daemon's first load at `big_records` (peak RSS), then the scaling
cells (SYNC_BATCH_SIZE x PROVIDER_PAGE_SIZE). Rates are records / the run's
own clock (the daemon's `duration_s`; the references time the same span:
first request to last commit), so interpreter start-up is not counted for anyone.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from tests.bench.context import Context
from tests.bench.harness import ROOT, median
from tests.bench.procs import base_env, python, run_measured

__all__ = ("SyncRun", "daemon_sync", "prepare_api_data", "run_sync_phase", "sync_unavailable")


@dataclass(frozen=True, slots=True)
class SyncRun:
    records: int
    seconds: float
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    db_cpu_s: float | None
    runq_s: float | None
    summary: dict[str, object]

    @property
    def rps(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def shares(self) -> dict[str, float | None]:
        """CPU of the sync process and of the DB server, as a share of one core over the process's life."""
        db = None if self.db_cpu_s is None else round(self.db_cpu_s / self.wall_s, 3)
        runq = None if self.runq_s is None else round(self.runq_s / self.wall_s, 3)
        return {"sync_cpu_share": round(self.cpu_s / self.wall_s, 3), "db_cpu_share": db, "runq_share": runq}


def sync_unavailable() -> str | None:
    """Why the daemon cannot run `sync --once` here (None when it can)."""
    out = subprocess.run(
        [*python(), "-m", "daemon", "sync", "--help"],
        cwd=ROOT,
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return None if out.returncode == 0 else "`customers-mngr sync --once` is not on this branch yet"


def daemon_sync(ctx: Context, database: str, dataset: str, **env: str) -> SyncRun:
    """One `customers-mngr sync --once` in its own process."""
    with ctx.dbcpu.span() as db_cpu:
        measured = run_measured(
            [*python(), "-m", "daemon", "sync", "--once", "--no-progress"],
            ctx.daemon_env(database, dataset, **env),
            timeout_s=1800,
        )
    summary = measured.last_json()
    if summary.get("status") not in ("ok", "partial"):
        raise RuntimeError(f"sync --once ended {summary.get('status')}: {summary.get('error')}")
    fetched = summary.get("fetched")
    duration = summary.get("duration_s")
    assert isinstance(fetched, int) and isinstance(duration, int | float)
    return SyncRun(
        fetched,
        float(duration),
        measured.wall_s,
        measured.cpu_s,
        measured.maxrss_mb,
        db_cpu[0],
        measured.runq_s,
        summary,
    )


def _predecessor(ctx: Context, database: str) -> tuple[float, dict[str, object]]:
    args = ("--url", ctx.dataset_url("pred"), "--database", ctx.db_url(database))
    with ctx.dbcpu.span() as db_cpu:
        result, measured = ctx.run_json("tests.bench.predecessor_sync", *args, timeout_s=1800)
    records, seconds = result["records"], result["seconds"]
    assert isinstance(records, int) and isinstance(seconds, int | float)
    info = {"records": records, "seconds": seconds, "cpu_s": measured.cpu_s, "wall_s": measured.wall_s}
    return records / float(seconds), info | {"db_cpu_s": db_cpu[0]}


def _limit(ctx: Context, database: str) -> tuple[float, dict[str, object]]:
    args = ("--url", ctx.dataset_url("base"), "--database", ctx.db_url(database), "--key-file", str(ctx.key_file))
    result, _measured = ctx.run_json("tests.bench.limit_upsert", *args, timeout_s=1800)
    records, seconds = result["records"], result["seconds"]
    assert isinstance(records, int) and isinstance(seconds, int | float)
    return records / float(seconds), result


def run_sync_phase(ctx: Context) -> dict[str, str]:
    """Every sync figure; returns the databases kept for the API phase ({"predecessor", "limit", "daemon"})."""
    sizes, report = ctx.sizes, ctx.report
    unavailable = sync_unavailable()
    kept: dict[str, str] = {}
    first_runs: list[SyncRun] = []
    same_runs: list[SyncRun] = []
    for run in range(1, sizes.runs + 1):
        last = run == sizes.runs
        _references(ctx, run, kept if last else None)
        if unavailable is None:
            first, same = _daemon_runs(ctx, run, kept if last else None)
            first_runs.append(first)
            same_runs.append(same)
    note = f"{sizes.predecessor_records:,} records (row by row: its time is linear in records)"
    report.note("predecessor_sync_rps", note)
    report.note("predecessor_sync_resync_rps", note)
    if unavailable is not None:
        for name in (
            "sync_first_load_rps",
            "sync_resync_unchanged_rps",
            "sync_resync_10pct_changed_rps",
            "sync_peak_rss_ratio",
            "sync_peak_rss_mb",
            "sync_first_load_peak_rss_mb",
        ):
            report.not_measured(name, unavailable)
        return kept
    _peak_rss(ctx, first_runs)
    _limits_section(ctx, first_runs)
    _cost_section(ctx, first_runs, same_runs)
    _scaling(ctx)
    return kept


def _references(ctx: Context, run: int, keep: dict[str, str] | None) -> None:
    """predecessor_sync (first load and re-sync) and limit_upsert, each on a fresh database."""
    sizes, report = ctx.sizes, ctx.report
    ctx.log(f"sync run {run}/{sizes.runs}: predecessor_sync ({sizes.predecessor_records:,} records, twice)")
    pred_db = ctx.new_db()
    rps, info = _predecessor(ctx, pred_db)
    report.add("predecessor_sync_rps", rps)
    ctx.detail("predecessor_sync", info)
    rps, info = _predecessor(ctx, pred_db)
    report.add("predecessor_sync_resync_rps", rps)
    ctx.detail("predecessor_sync_resync", info)
    ctx.log(f"sync run {run}/{sizes.runs}: limit_upsert ({sizes.records:,} records)")
    limit_db = ctx.new_db(migrate=True)
    rps, info = _limit(ctx, limit_db)
    report.add("limit_upsert_rps", rps)
    ctx.detail("limit_upsert", info)
    if keep is None:
        ctx.drop(pred_db)
        ctx.drop(limit_db)
    else:
        keep.update(predecessor=pred_db, limit=limit_db)


def _daemon_runs(ctx: Context, run: int, keep: dict[str, str] | None) -> tuple[SyncRun, SyncRun]:
    """The daemon's first load, unchanged re-sync and 10%-changed re-sync on one fresh database."""
    sizes, report = ctx.sizes, ctx.report
    ctx.log(f"sync run {run}/{sizes.runs}: daemon first load, re-sync, 10% changed ({sizes.records:,} records)")
    daemon_db = ctx.new_db()
    first = daemon_sync(ctx, daemon_db, "base")
    report.add("sync_first_load_rps", first.rps)
    ctx.detail("sync_first_load", first.summary | first.shares() | {"maxrss_mb": first.maxrss_mb})
    same = daemon_sync(ctx, daemon_db, "base")
    report.add("sync_resync_unchanged_rps", same.rps)
    ctx.detail("sync_resync_unchanged", same.summary | same.shares())
    changed = daemon_sync(ctx, daemon_db, "changed")
    report.add("sync_resync_10pct_changed_rps", changed.rps)
    ctx.detail("sync_resync_10pct_changed", changed.summary | changed.shares())
    if keep is None:
        ctx.drop(daemon_db)
    else:
        keep["daemon"] = daemon_db
    return first, same


def _peak_rss(ctx: Context, first_runs: list[SyncRun]) -> None:
    sizes, report = ctx.sizes, ctx.report
    big_runs: list[SyncRun] = []
    for run in range(1, sizes.runs + 1):
        ctx.log(f"peak RSS run {run}/{sizes.runs}: daemon first load of {sizes.big_records:,} records")
        big_db = ctx.new_db()
        big = daemon_sync(ctx, big_db, "big")
        big_runs.append(big)
        ctx.detail("sync_big_first_load", big.summary | big.shares() | {"maxrss_mb": big.maxrss_mb})
        ctx.drop(big_db)
    small_rss = median([r.maxrss_mb for r in first_runs])
    big_rss = median([r.maxrss_mb for r in big_runs])
    report.derived(
        "sync_peak_rss_ratio",
        big_rss / small_rss,
        note=f"peak RSS {big_rss:.0f} MB at {sizes.big_records:,} / {small_rss:.0f} MB at {sizes.records:,}",
    )
    for r in big_runs:
        report.add("sync_peak_rss_mb", r.maxrss_mb)
    report.note("sync_peak_rss_mb", f"`sync --once`, {sizes.big_records:,} records, ru_maxrss of the process")
    for r in first_runs:
        report.add("sync_first_load_peak_rss_mb", r.maxrss_mb)
    report.note("sync_first_load_peak_rss_mb", f"{sizes.records:,} records")


def _limits_section(ctx: Context, runs: list[SyncRun]) -> None:
    """What limits the first load: where the sync process's wall time went, and the DB server's CPU."""
    cpu = median([r.cpu_s / r.wall_s for r in runs])
    runq_runs = [r.runq_s / r.wall_s for r in runs if r.runq_s is not None]
    runq = median(runq_runs) if runq_runs else None
    waiting = max(0.0, 1.0 - cpu - (runq or 0.0))
    cpu_us = median([r.cpu_s / r.records * 1e6 for r in runs])
    db_us_runs = [r.db_cpu_s / r.records * 1e6 for r in runs if r.db_cpu_s is not None]
    db_us = f"{median(db_us_runs):.0f} µs" if db_us_runs else "an unknown amount (server not visible from here)"
    if runq is not None and runq >= 0.25:
        verdict = "the machine is oversubscribed: the sync process waited for a CPU a quarter of the time or more"
    elif cpu >= waiting:
        verdict = (
            "the sync process's own CPU (one Python thread) is the main limit; the time waiting on I/O is DB "
            "round trips and provider pages not overlapped with that work"
        )
    else:
        verdict = "the sync process mostly waits on I/O (its DB round trips and provider pages are not overlapped)"
    runq_text = "unknown" if runq is None else f"{runq:.0%}"
    body = (
        f"First load of {ctx.sizes.records:,} records, medians over {len(runs)} runs. Wall time of the sync "
        f"process: {cpu:.0%} on a CPU, {runq_text} runnable but waiting for one (other processes), "
        f"{waiting:.0%} waiting on I/O. CPU per record: {cpu_us:.0f} µs in the sync process (start-up "
        f"included), {db_us} in the DB server. Verdict: {verdict}. This machine has "
        f"{ctx.report.machine.cores} cores shared by the provider, the DB and the syncer; the syncer is one "
        "asyncio thread, so it can use at most one of them."
    )
    predecessor = ctx.report.details.get("predecessor_sync") or []
    if predecessor:
        pred_cpu = median([d["cpu_s"] / d["records"] * 1e6 for d in predecessor])
        pred_db = [d["db_cpu_s"] / d["records"] * 1e6 for d in predecessor if d.get("db_cpu_s") is not None]
        pred_db_text = f", {median(pred_db):.0f} µs in the DB server" if pred_db else ""
        body += (
            f" For comparison, predecessor_sync used {pred_cpu:.0f} µs of CPU per record in its process (start-up "
            f"included){pred_db_text}. When the machine is oversubscribed every process gets a slice of the "
            "CPUs, and the ratios of records/s drift toward the ratios of CPU per record."
        )
    ctx.report.details["sync_limits"] = {"cpu_share": cpu, "runq_share": runq, "io_share": waiting, "cpu_us": cpu_us}
    ctx.report.section("What limits the sync", body)


def _startup_cpu_s(ctx: Context) -> float:
    """CPU of starting the interpreter and importing the daemon (`sync --help`): not per-record work."""
    runs = [
        run_measured([*python(), "-m", "daemon", "sync", "--help"], base_env(), timeout_s=120).cpu_s
        for _ in range(ctx.sizes.runs)
    ]
    return median(runs)


def _cost_section(ctx: Context, first_runs: list[SyncRun], same_runs: list[SyncRun]) -> None:
    """CPU per record by stage (isolated) against the sync process's CPU per record in its runs."""
    ctx.log("sync cost per stage (isolated, CPU time)")
    stages, _ = ctx.run_json("tests.bench.sync_cost", "--records", "5000", "--runs", str(ctx.sizes.runs))
    startup = _startup_cpu_s(ctx)
    first_us = median([(r.cpu_s - startup) / r.records * 1e6 for r in first_runs])
    same_us = median([(r.cpu_s - startup) / r.records * 1e6 for r in same_runs])
    names = {
        "decode": "decode the provider's JSON",
        "raw": "raw hash (`raw_digest_input` + HMAC): the skip of unchanged records",
        "validate": "validate (`parse_record`): new or changed records only",
        "hash": "content hash (`canonical()` + HMAC)",
        "encrypt": "encrypt + mask + blind index (`customer_row`)",
        "sql": "SQL text of the upserts (`row_literal` + `upsert_of_literals`, encoded)",
    }
    in_resync = {"decode", "raw"}  # an unchanged record is neither validated nor written
    costs = {k: float(v) for k, v in stages.items() if isinstance(v, int | float)}
    first_parts = sum(costs.values())
    same_parts = sum(costs.get(k, 0.0) for k in in_resync)
    rows = ["| stage | first load | unchanged re-sync |", "|---|---:|---:|"]
    for key, label in names.items():
        rows.append(f"| {label} | {costs.get(key, 0):.1f} | {costs.get(key, 0) if key in in_resync else 0:.1f} |")
    rows.append(f"| **sum of the stages** | **{first_parts:.1f}** | **{same_parts:.1f}** |")
    rows.append(f"| sync process CPU per record in its runs (start-up removed) | {first_us:.1f} | {same_us:.1f} |")
    rows.append(
        f"| the rest: event loop, aiohttp client, asyncmy, lookups, batching, metrics | "
        f"{first_us - first_parts:.1f} | {same_us - same_parts:.1f} |"
    )
    rows.append(
        f"| records/s one free core could give if all I/O were overlapped | {1e6 / first_us:,.0f} | "
        f"{1e6 / same_us:,.0f} |"
    )
    sql_us = costs.get("sql")
    ctx.report.details["sync_cost_us"] = costs | {"sql": sql_us, "first_us": first_us, "same_us": same_us}
    title = "Where the sync's CPU goes (µs of CPU per record; stages measured in isolation, CPU time)"
    ctx.report.section(title, "\n".join(rows))


def _scaling(ctx: Context) -> None:
    sizes = ctx.sizes
    rows = [
        "| SYNC_BATCH_SIZE | PROVIDER_PAGE_SIZE | records/s (median) | sync CPU µs/record | DB CPU µs/record "
        "| sync on CPU | sync waiting for CPU | DB CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    startup = _startup_cpu_s(ctx)
    for batch, page in sizes.scale_cells:
        runs: list[SyncRun] = []
        for run in range(1, sizes.runs + 1):
            ctx.log(f"scaling batch={batch} page={page} run {run}/{sizes.runs} ({sizes.scale_records:,} records)")
            database = ctx.new_db()
            env = {"SYNC_BATCH_SIZE": str(batch), "PROVIDER_PAGE_SIZE": str(page)}
            if page == 0:
                env["PROVIDER_MAX_BODY_BYTES"] = str(1 << 30)
            runs.append(daemon_sync(ctx, database, "scale", **env))
            ctx.drop(database)
        rps = median([r.rps for r in runs])
        sync_share = median([r.cpu_s / r.wall_s for r in runs])
        db = [r.db_cpu_s / r.wall_s for r in runs if r.db_cpu_s is not None]
        db_text = f"{median(db):.0%}" if db else "—"
        runq = [r.runq_s / r.wall_s for r in runs if r.runq_s is not None]
        runq_text = f"{median(runq):.0%}" if runq else "—"
        page_text = "0 (one request)" if page == 0 else str(page)
        cpu_us = median([(r.cpu_s - startup) / r.records * 1e6 for r in runs])
        db_us = [r.db_cpu_s / r.records * 1e6 for r in runs if r.db_cpu_s is not None]
        db_us_text = f"{median(db_us):.0f}" if db_us else "—"
        rows.append(
            f"| {batch} | {page_text} | {rps:,.0f} | {cpu_us:.0f} | {db_us_text} | {sync_share:.0%} | {runq_text} "
            f"| {db_text} |"
        )
        ctx.detail("scaling", {"batch": batch, "page": page, "rps": [r.rps for r in runs]})
    title = (
        f"How the first load scales ({sizes.scale_records:,} records; CPU per record with start-up removed — "
        "steady under load, unlike records/s; shares of the sync process's wall time; DB CPU as a share of one core, "
        "other clients of the server included)"
    )
    ctx.report.section(title, "\n".join(rows))


def prepare_api_data(ctx: Context) -> dict[str, str]:
    """The databases the API phase reads, when the sync phase is not run (`--only api`): loaded once."""
    ctx.log("loading data for the API phase (predecessor table, daemon table)")
    kept = {"predecessor": ctx.new_db()}
    _predecessor(ctx, kept["predecessor"])
    if sync_unavailable() is None:
        kept["daemon"] = ctx.new_db()
        daemon_sync(ctx, kept["daemon"], "base")
    else:
        kept["limit"] = ctx.new_db(migrate=True)
        _limit(ctx, kept["limit"])
    return kept
