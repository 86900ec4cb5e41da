"""The suite's session state: its artifacts folder, its report, and the printing of the figures.

`suite` holds `.reliability/` (every subprocess's log, every scenario's DB dump), the
session's keys and tokens and the provider values served; `report` collects each
scenario's figures. At the end of the session the figures and the table are printed
(terminal summary), saved as `.reliability/figures.json`, and written as markdown to
the file named by RELIABILITY_REPORT when it is set (`make reliability`: docs/reliability.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import Suite, soak
from tests.reliability.report import Report
from tests.support.daemon_proc import ROOT

ARTIFACTS = ROOT / ".reliability"
REPORT = Report(soak=soak())


@pytest.fixture(scope="session")
def suite() -> Suite:
    return Suite.create(ARTIFACTS)


@pytest.fixture(scope="session")
def report() -> Report:
    return REPORT


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    rep = yield
    if rep.when == "call" or (rep.when == "setup" and rep.failed):
        item.stash[_OUTCOME] = rep
    return rep


_OUTCOME = pytest.StashKey[pytest.TestReport]()


@pytest.fixture(autouse=True)
def _scenario_outcome(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the figures of the scenario this test opened with its outcome (a failure keeps its reason)."""
    before = set(REPORT.scenarios)
    yield
    rep = request.node.stash.get(_OUTCOME, None)
    failure: str | None = None
    if rep is None or not rep.passed:
        crash = getattr(getattr(rep, "longrepr", None), "reprcrash", None)
        failure = (crash.message if crash is not None else str(getattr(rep, "longrepr", "not run")))[:500]
        failure = " ".join(failure.split())
    for number in set(REPORT.scenarios) - before:
        REPORT.scenarios[number].finish(failure)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT.scenarios:
        return
    terminalreporter.section("reliability figures")
    for line in REPORT.text():
        terminalreporter.write_line(line)
    if ARTIFACTS.exists():
        REPORT.save_json(ARTIFACTS / "figures.json")
        terminalreporter.write_line(f"logs, dumps and figures.json: {ARTIFACTS}")
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        path = Path(target)
        path = path if path.is_absolute() else ROOT / path
        path.write_text(REPORT.markdown())
        terminalreporter.write_line(f"report written: {path}")
