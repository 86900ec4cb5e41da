"""`python -m tests.bench [--quick] [--out PATH] [--readme README.md] [--only PHASE,...]`

The whole suite in one command (`make bench`, `make bench-quick`): the machine
header, then crypto, sync, API and start-up phases, each figure side by side
with its references; the markdown table is printed and written with the JSON
(see harness.py). Fresh databases on the local MySQL/MariaDB
(TEST_DATABASE_URL, default root@127.0.0.1:3306) are dropped at the end.
A missed goal is reported, never an error; the exit code is 1 only when a
phase could not run to its end (its figures then say why).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from tests.bench.api_phase import run_api_phase
from tests.bench.context import FULL, QUICK, Context
from tests.bench.goals import FIGURES, OTHER, REFERENCES
from tests.bench.harness import ROOT, Machine, Report, load_average
from tests.bench.procs import Server, base_env, free_port, python
from tests.bench.startup_phase import run_startup_phase
from tests.bench.sync_phase import prepare_api_data, run_sync_phase
from tests.support.mysql import server_from_env

PHASES = ("crypto", "sync", "api", "startup")
_PHASE_FIGURES = {
    "crypto": ("crypto_encrypt_us_per_record", "aesgcm_direct_us_per_record", "aesgcm_direct_aad_us_per_record"),
    "sync": tuple(n for n in [*FIGURES, *REFERENCES, *OTHER] if "sync" in n or n.startswith("limit")),
    "api": tuple(n for n in [*FIGURES, *REFERENCES] if "api" in n),
    "startup": tuple(n for n in [*FIGURES, *OTHER] if n.startswith(("startup", "binary", "image"))),
}


def run_crypto(ctx: Context) -> None:
    runs = max(ctx.sizes.runs, 5)
    ctx.log(f"crypto: Keyring vs AESGCM, {ctx.sizes.crypto_records:,} records x {runs} runs")
    result, _ = ctx.run_json(
        "tests.bench.crypto_bench", "--records", str(ctx.sizes.crypto_records), "--runs", str(runs), timeout_s=600
    )
    keyring_us, direct_us, direct_aad_us = result["keyring_us"], result["direct_us"], result["direct_aad_us"]
    assert isinstance(keyring_us, list) and isinstance(direct_us, list) and isinstance(direct_aad_us, list)
    for value in keyring_us:
        ctx.report.add("crypto_encrypt_us_per_record", float(value))
    for value in direct_us:
        ctx.report.add("aesgcm_direct_us_per_record", float(value))
    for value in direct_aad_us:
        ctx.report.add("aesgcm_direct_aad_us_per_record", float(value))
    note = f"{result['fields_per_record']:.0f} encrypted fields per record, alternating runs in one process, CPU time"
    ctx.report.note("crypto_encrypt_us_per_record", note)


def _provider(ctx: Context) -> Server:
    s = ctx.sizes
    datasets = [
        f"base={s.records}",
        f"changed={s.records}:10",
        f"pred={s.predecessor_records}",
        f"big={s.big_records}",
        f"scale={s.scale_records}",
    ]
    port = free_port()
    cmd = [*python(), "-m", "tests.bench.provider", "--port", str(port)]
    for dataset in datasets:
        cmd += ["--dataset", dataset]
    ctx.log(f"provider: rendering the simulator's records ({', '.join(datasets)})")
    server = Server("provider", cmd, base_env(), log_dir=ctx.work / "logs")
    ctx.provider_url = f"http://127.0.0.1:{port}"
    server.wait_ready(ctx.dataset_url("pred") + "?page=1&limit=1", timeout_s=600)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (under 3 minutes)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("BENCH_OUT") or ".bench/results.json"))
    parser.add_argument("--readme", type=Path, default=None, help="rewrite this file's bench section")
    parser.add_argument("--only", default=",".join(PHASES), help=f"comma-separated phases of {PHASES}")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the figures of the previous run of the same kind (.bench/run.json) for the phases not run now",
    )
    args = parser.parse_args(argv)
    phases = [p for p in args.only.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}")
    out = args.out if args.out.is_absolute() else ROOT / args.out
    mysql = server_from_env()
    version = mysql.execute("SELECT VERSION()")[0][0]
    report = Report(Machine.probe(str(version)), quick=args.quick)
    print(report.machine.header(load_average(), None), flush=True)
    ctx = Context(sizes=QUICK if args.quick else FULL, report=report, mysql=mysql, work=out.parent)
    ctx.work.mkdir(parents=True, exist_ok=True)
    if args.merge and not report.merge(ctx.work / "run.json"):
        print("--merge: no earlier run of the same kind to merge with; measuring only the phases asked", flush=True)
    failed = False
    provider: Server | None = None
    kept: dict[str, str] = {}

    def phase(name: str, body: Callable[[], object]) -> None:
        nonlocal failed
        if name not in phases:
            return
        report.reset(_PHASE_FIGURES[name])
        report.details.setdefault("load_at_phase_start", {})[name] = load_average()
        try:
            body()
        except Exception as exc:
            failed = True
            traceback.print_exc()
            for figure in _PHASE_FIGURES[name]:
                if report.value(figure) is None:
                    report.not_measured(figure, f"the {name} phase failed ({type(exc).__name__}: {exc})"[:300])

    try:
        if {"sync", "api", "startup"} & set(phases):
            provider = _provider(ctx)
        phase("crypto", lambda: run_crypto(ctx))
        phase("sync", lambda: kept.update(run_sync_phase(ctx)))
        if "api" in phases and not kept:
            phase("api", lambda: kept.update(_api_data_only(ctx)))
        phase("api", lambda: run_api_phase(ctx, kept))
        phase(
            "startup",
            lambda: run_startup_phase(ctx, kept.get("daemon") or kept.get("limit") or ctx.new_db(migrate=True)),
        )
    finally:
        if provider is not None:
            provider.stop()
        ctx.drop_all()
    text = report.write(
        out, readme=(args.readme if args.readme is None or args.readme.is_absolute() else ROOT / args.readme)
    )
    print(text, flush=True)
    print(f"results: {out}", flush=True)
    return 1 if failed else 0


def _api_data_only(ctx: Context) -> dict[str, str]:
    """Without the sync phase, the API still needs data: one predecessor and one daemon (or limit) load."""
    return prepare_api_data(ctx)


if __name__ == "__main__":
    sys.exit(main())
