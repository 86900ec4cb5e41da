"""`make bench-profile`: where the sync's time goes, for the next person who makes it faster.

    python -m tests.bench.profiling [--records N] [--out-dir .bench]

Runs the daemon's `sync --once` under pyinstrument (a sampling profiler: low
overhead, whole call stacks) twice on a fresh database — the first load, then
the unchanged re-sync — against the bench provider. For each it saves, under
`--out-dir`:
  profile-<phase>.html    the interactive call tree (open in a browser)
  profile-<phase>.txt     the same as text
  profile-<phase>.flat.txt  functions by own time
  profile-<phase>.pstats  for pstats / snakeviz (pyinstrument's samples: no call counts)
and prints the call tree plus the functions with the most own time. Wall-clock
samples: on a busy machine, time spent waiting for a CPU is spread over the
frames that were running, so read proportions rather than seconds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from tests.bench.context import FULL, Context
from tests.bench.harness import ROOT, Machine, Report, load_average
from tests.bench.procs import Server, base_env, free_port, python
from tests.bench.sync_phase import sync_unavailable
from tests.support.mysql import server_from_env

__all__ = ("main",)

_TOP = 25


def _profile(ctx: Context, database: str, phase: str, out_dir: Path) -> str:
    session = out_dir / f"profile-{phase}.pyisession"
    cmd = [*python(), "-m", "pyinstrument", "-r", "pyisession", "-o", str(session)]
    cmd += ["-m", "daemon", "sync", "--once", "--no-progress"]
    out = subprocess.run(
        cmd, cwd=ROOT, env=ctx.daemon_env(database, "base"), capture_output=True, text=True, timeout=1800, check=False
    )
    if out.returncode not in (0, 4):
        raise RuntimeError(f"sync --once under the profiler exited {out.returncode}: {out.stderr[-800:]}")
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "(no summary)"
    renders = (("html", ".html", ()), ("text", ".txt", ()), ("text", ".flat.txt", ("-p", "flat=true")))
    for renderer, suffix, options in (*renders, ("pstats", ".pstats", ())):
        target = str(session.with_suffix(suffix))
        subprocess.run(
            [*python(), "-m", "pyinstrument", "--load", str(session), "-r", renderer, *options, "-o", target],
            cwd=ROOT,
            env=base_env(),
            check=True,
            timeout=300,
        )
    tree = session.with_suffix(".txt").read_text()
    flat = session.with_suffix(".flat.txt").read_text().strip().splitlines()
    top = "\n".join(line for line in flat if line[:1].isdigit())
    top = "\n".join(top.splitlines()[:_TOP])
    return f"== {phase}: {summary}\n{tree}\n-- the {_TOP} functions with the most own time (seconds) --\n{top}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profiling", description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--out-dir", type=Path, default=ROOT / ".bench")
    args = parser.parse_args(argv)
    reason = sync_unavailable()
    if reason:
        print(f"bench-profile: {reason}; nothing to profile", file=sys.stderr)
        return 1
    mysql = server_from_env()
    report = Report(Machine.probe(str(mysql.execute("SELECT VERSION()")[0][0])), quick=True)
    print(report.machine.header(load_average(), None), flush=True)
    ctx = Context(sizes=FULL, report=report, mysql=mysql, work=args.out_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    provider = Server(
        "provider",
        [*python(), "-m", "tests.bench.provider", "--port", str(port), "--dataset", f"base={args.records}"],
        base_env(),
        log_dir=args.out_dir / "logs",
    )
    try:
        ctx.provider_url = f"http://127.0.0.1:{port}"
        provider.wait_ready(ctx.dataset_url("base") + "?page=1&limit=1", timeout_s=600)
        database = ctx.new_db()
        for phase in ("first-load", "resync-unchanged"):
            ctx.log(f"profiling sync --once: {phase} ({args.records:,} records)")
            print(_profile(ctx, database, phase, args.out_dir), flush=True)
    finally:
        provider.stop()
        ctx.drop_all()
    print(f"profiles: {args.out_dir}/profile-*.html (.txt, .pstats)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
