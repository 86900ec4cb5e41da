"""The state one benchmark command shares: sizes, the report, throwaway databases, the provider."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.harness import ROOT, Report
from tests.bench.procs import DbCpu, Measured, base_env, python, run_measured
from tests.support.mysql import MysqlServer

__all__ = ("FULL", "QUICK", "Context", "Sizes")


@dataclass(frozen=True, slots=True)
class Sizes:
    records: int  # first load and re-syncs (the issue: 50,000)
    predecessor_records: int  # the predecessor's runs (row by row: linear in records, see README)
    big_records: int  # the peak-RSS comparison (the issue: 200,000 vs `records`)
    scale_records: int  # each cell of the scaling table
    scale_cells: tuple[tuple[int, int], ...]  # (SYNC_BATCH_SIZE, PROVIDER_PAGE_SIZE)
    api_duration_s: int  # each load run
    crypto_records: int
    runs: int = 3
    build_binary: bool = False  # `make binary` when dist/customers-mngr is missing


FULL = Sizes(
    records=50_000,
    predecessor_records=10_000,
    big_records=200_000,
    scale_records=20_000,
    scale_cells=((100, 100), (500, 100), (2000, 100), (500, 1000), (500, 0)),
    api_duration_s=5,
    crypto_records=10_000,
    build_binary=True,
)
QUICK = Sizes(
    records=5_000,
    predecessor_records=1_500,
    big_records=20_000,
    scale_records=3_000,
    scale_cells=((100, 100), (500, 100), (500, 1000)),
    api_duration_s=2,
    crypto_records=3_000,
)


@dataclass
class Context:
    sizes: Sizes
    report: Report
    mysql: MysqlServer
    work: Path
    provider_url: str = ""
    databases: list[str] = field(default_factory=list)
    dbcpu: DbCpu = field(default_factory=DbCpu)
    started: float = field(default_factory=time.monotonic)

    @property
    def key_file(self) -> Path:
        return self.work / "dev-keys.json"

    def log(self, message: str) -> None:
        print(f"[bench {time.monotonic() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)

    def new_db(self, *, migrate: bool = False) -> str:
        name = self.mysql.new_name("bench")
        self.mysql.create(name)
        self.databases.append(name)
        if migrate:
            out = subprocess.run(
                [*python(), "-m", "daemon", "migrate"],
                cwd=ROOT,
                env=base_env({"APP_ENV": "development", "DATABASE_URL": self.db_url(name), "LOG_LEVEL": "warning"}),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(f"migrate failed ({out.returncode}): {out.stderr[-800:]}")
        return name

    def drop(self, name: str) -> None:
        self.mysql.drop(name)
        if name in self.databases:
            self.databases.remove(name)

    def drop_all(self) -> None:
        for name in list(self.databases):
            try:
                self.drop(name)
            except Exception as exc:  # keep dropping the others
                self.log(f"could not drop {name}: {exc}")

    def db_url(self, name: str) -> str:
        return self.mysql.url(name)

    def dataset_url(self, dataset: str) -> str:
        return f"{self.provider_url}/{dataset}/api/v1/usuarios"

    def daemon_env(self, database: str, dataset: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            "APP_ENV": "development",
            "DATABASE_URL": self.db_url(database),
            "DEV_KEY_FILE": str(self.key_file),
            # Production logging (info, JSON): the access and audit lines are part of a request's cost.
            "LOG_LEVEL": "info",
            "LOG_FORMAT": "json",
        }
        if dataset is not None:
            env["PROVIDER_URL"] = self.dataset_url(dataset)
        env.update(extra)
        return base_env(env)

    def run_json(self, module: str, *args: str, timeout_s: float = 600) -> tuple[dict[str, object], Measured]:
        """`python -m <module> args` → its JSON summary line and its measurements."""
        measured = run_measured([*python(), "-m", module, *args], base_env(), timeout_s=timeout_s)
        if measured.code != 0:
            raise RuntimeError(f"{module} exited {measured.code}: {measured.stderr[-800:]}")
        return measured.last_json(), measured

    def detail(self, key: str, value: object) -> None:
        self.report.details.setdefault(key, []).append(value)

    def dump_detail(self, key: str) -> str:
        return json.dumps(self.report.details.get(key), default=str)
