"""What every benchmark shares: the machine header, figures (runs → median), goals, output.

Output of a run:
- the markdown table, printed (and written to `<out dir>/results.md`);
- `$BENCH_OUT` (default `.bench/results.json`): a JSON list of
  {"name", "value", "unit", "reference", "ratio", "goal", "met"} objects, plus
  "reference_value", "ratios" (to every reference of the goal), "runs" and "note";
- `<out dir>/run.json`: the machine, the configuration and the details of every phase;
- with `--readme`, the README section between `<!-- BEGIN bench -->` and `<!-- END bench -->`.

A missed goal is reported (met: false), never raised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.goals import FIGURES, OTHER, REFERENCES, Spec, evaluate

__all__ = (
    "ROOT",
    "Figure",
    "Machine",
    "Report",
    "load_average",
    "median",
    "replace_section",
)

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- BEGIN bench -->", "<!-- END bench -->"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Machine:
    cpu_model: str
    cores: int
    memory_gib: float
    python: str
    db_version: str
    commit: str
    started_at: str

    @classmethod
    def probe(cls, db_version: str) -> Machine:
        return cls(
            cpu_model=_cpu_model(),
            cores=os.cpu_count() or 0,
            memory_gib=_memory_gib(),
            python=platform.python_version(),
            db_version=db_version,
            commit=_git_commit(),
            started_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )

    def header(self, load_start: tuple[float, float, float], load_end: tuple[float, float, float] | None) -> str:
        def fmt(load: tuple[float, float, float]) -> str:
            return " ".join(f"{x:.2f}" for x in load)

        line = (
            f"Machine: {self.cpu_model}, {self.cores} cores, {self.memory_gib:.0f} GiB; Python {self.python}; "
            f"DB {self.db_version}; commit {self.commit}; {self.started_at}. "
            f"Load average (1/5/15 min) at start {fmt(load_start)}"
        )
        return line + (f", at end {fmt(load_end)}." if load_end else ".")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("+dirty" if dirty.stdout.strip() else "")


@dataclass(slots=True)
class Figure:
    """One named figure: its runs (median reported) or why it was not measured."""

    name: str
    spec: Spec
    runs: list[float] = field(default_factory=list)
    note: str = ""
    value_override: float | None = None  # a figure derived from others (e.g. a ratio of medians)

    @property
    def value(self) -> float | None:
        if self.value_override is not None:
            return self.value_override
        return median(self.runs) if self.runs else None


class Report:
    """Collects figures; renders the table, the JSON and the README section."""

    def __init__(self, machine: Machine, *, quick: bool) -> None:
        self.machine = machine
        self.quick = quick
        self.load_start = load_average()
        self.load_end: tuple[float, float, float] | None = None
        self.figures: dict[str, Figure] = {}
        self.details: dict[str, Any] = {}
        self.sections: dict[str, str] = {}  # title -> markdown, after the main table
        self.merged_from: list[str] = []  # earlier runs whose figures this report carries

    def _figure(self, name: str) -> Figure:
        if name not in self.figures:
            spec = FIGURES.get(name) or REFERENCES.get(name) or OTHER.get(name)
            if spec is None:
                raise KeyError(f"unknown figure {name!r}: add it to tests/bench/goals.py")
            self.figures[name] = Figure(name, spec)
        return self.figures[name]

    def add(self, name: str, value: float, *, note: str | None = None) -> None:
        figure = self._figure(name)
        figure.runs.append(float(value))
        if note:
            figure.note = note

    def derived(self, name: str, value: float, runs: Iterable[float] = (), *, note: str = "") -> None:
        figure = self._figure(name)
        figure.value_override = float(value)
        figure.runs = [float(r) for r in runs]
        figure.note = note

    def section(self, title: str, body: str) -> None:
        self.sections[title] = body

    def reset(self, names: Iterable[str]) -> None:
        """Forget these figures (a phase about to be measured again)."""
        for name in names:
            self.figures.pop(name, None)

    def merge(self, run_json: Path) -> bool:
        """Carry the figures and sections of an earlier run of the same kind; False if there is none."""
        try:
            earlier = json.loads(run_json.read_text())
        except (OSError, ValueError):
            return False
        if earlier.get("quick") != self.quick or "figures" not in earlier:
            return False
        for name, raw in earlier["figures"].items():
            if name in FIGURES or name in REFERENCES or name in OTHER:
                figure = self._figure(name)
                figure.runs = [float(r) for r in raw["runs"]]
                figure.value_override = raw["value_override"]
                figure.note = raw["note"]
        self.sections.update(earlier.get("sections", {}))  # raw details stay with their own run.json
        self.merged_from = [*earlier.get("merged_from", []), earlier["machine"]["started_at"]]
        return True

    def not_measured(self, name: str, reason: str) -> None:
        figure = self._figure(name)
        figure.runs = []
        figure.value_override = None
        figure.note = f"not measured: {reason}"

    def note(self, name: str, text: str) -> None:
        self._figure(name).note = text

    def value(self, name: str) -> float | None:
        figure = self.figures.get(name)
        return None if figure is None else figure.value

    # --- output ------------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """The JSON list: the daemon's figures first (issue order), then the references."""
        values = {name: figure.value for name, figure in self.figures.items()}
        out: list[dict[str, Any]] = []
        for name, spec in [*FIGURES.items(), *REFERENCES.items(), *OTHER.items()]:
            figure = self.figures.get(name) or Figure(name, spec, note="not measured: not part of this run")
            value = figure.value
            met, ratios = evaluate(spec, value, values)
            primary = next((b.reference for b in spec.bounds if b.reference), None)
            out.append(
                {
                    "name": name,
                    "value": None if value is None else round(value, 4),
                    "unit": spec.unit,
                    "reference": primary,
                    "ratio": None if primary is None or primary not in ratios else round(ratios[primary], 4),
                    "goal": spec.goal,
                    "met": met,
                    "reference_value": None if primary is None or values.get(primary) is None else values[primary],
                    "ratios": {k: round(v, 4) for k, v in ratios.items()},
                    "runs": [round(r, 4) for r in figure.runs],
                    "note": figure.note,
                }
            )
        return out

    def table(self) -> str:
        """The daemon's figures (every one, measured or not), then the measured references and others."""
        rows = [
            "| figure | value | unit | goal | against the references | met | note |",
            "|---|---:|---|---|---|---|---|",
        ]
        for rec in self.records():
            if rec["name"] not in FIGURES and rec["value"] is None:
                continue
            ratios = ", ".join(f"{_num(v)}x {_short(k)}" for k, v in rec["ratios"].items()) or "—"
            met = {True: "yes", False: "**no**", None: "—"}[rec["met"]]
            runs = f" ({len(rec['runs'])} runs)" if len(rec["runs"]) > 1 else ""
            goal = rec["goal"] if rec["name"] in FIGURES else "—"
            row = [f"`{rec['name']}`", f"{_num(rec['value'])}{runs}", rec["unit"], goal, ratios, met, rec["note"]]
            rows.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
        return "\n".join(rows)

    def markdown(self) -> str:
        mode = "`make bench-quick` (reduced sizes)" if self.quick else "`make bench`"
        parts = [
            f"Produced by {mode}; medians of at least 3 runs, references measured in the same run.",
            "",
            self.machine.header(self.load_start, self.load_end),
            "",
            self.table(),
        ]
        if self.merged_from:
            parts[2] += f" Figures not re-measured in this run come from the run(s) of {', '.join(self.merged_from)}."
        for title, body in self.sections.items():
            parts += ["", f"**{title}**", "", body]
        return "\n".join(parts) + "\n"

    def write(self, out: Path, *, readme: Path | None = None) -> str:
        self.load_end = load_average()
        text = self.markdown()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.records(), indent=2, ensure_ascii=False) + "\n")
        (out.parent / "results.md").write_text(text)
        run = {
            "machine": dataclasses.asdict(self.machine) | {"load_start": self.load_start, "load_end": self.load_end},
            "quick": self.quick,
            "merged_from": self.merged_from,
            "figures": {
                name: {"runs": f.runs, "value_override": f.value_override, "note": f.note}
                for name, f in self.figures.items()
            },
            "sections": self.sections,
            "details": self.details,
        }
        (out.parent / "run.json").write_text(json.dumps(run, indent=2, ensure_ascii=False, default=str) + "\n")
        if readme is not None:
            readme.write_text(replace_section(readme.read_text(), text))
        return text


def _short(name: str) -> str:
    for suffix in ("_rps", "_us_per_record", "_ms"):
        name = name.removesuffix(suffix)
    return name


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def replace_section(document: str, body: str) -> str:
    """`document` with the text between the bench markers replaced by `body` (markers appended if absent)."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    if pattern.search(document):
        return pattern.sub(lambda _m: block, document, count=1)
    return document.rstrip("\n") + f"\n\n## Performance\n\n{block}\n"
