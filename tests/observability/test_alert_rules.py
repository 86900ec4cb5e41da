"""The Prometheus rules file and scrape config: valid for promtool, alerts fire when they should,
and every expression names only metrics the daemon exposes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.promql import selectors
from tests.observability.support import exposition

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docker/prometheus/rules.yml"
CONFIG = ROOT / "docker/prometheus/prometheus.yml"
SCENARIOS = Path(__file__).with_name("alerts_test.yml")
# The alerts the issue names, by what they watch.
REQUIRED = {
    "CustomersMngrSyncStale",
    "CustomersMngrSyncFailing",
    "CustomersMngrApi5xxRatio",
    "CustomersMngrActorRestartLoop",
}


def find_promtool() -> str | None:
    """promtool from PATH, else Debian's `prometheus` package installed once (root with apt only)."""
    found = shutil.which("promtool")
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    for attempt in ([install], [["apt-get", "update"], install]):
        try:
            for command in attempt:
                subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError):
            continue
        if shutil.which("promtool"):
            break
    return shutil.which("promtool")


@pytest.fixture(scope="session")
def promtool() -> str:
    found = find_promtool()
    if found is None:
        pytest.skip("promtool unavailable (not on PATH, and Debian's prometheus package could not be installed)")
    return found


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_rules_reference_only_exposed_metrics() -> None:
    """Every metric, label and fixed label value in each rule's expression exists in a real exposition."""
    reference = exposition()
    problems = []
    for rule in rules():
        found = selectors(rule["expr"])
        assert found, rule["alert"]
        problems += [f"{rule['alert']}: {p}" for s in found for p in reference.problems(s)]
    assert problems == []


def test_rules_cover_the_issue_and_are_documented() -> None:
    """The four alerts of the issue exist; every alert has a severity, a summary and a description."""
    alerts = {rule["alert"]: rule for rule in rules()}
    assert set(alerts) >= REQUIRED
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_stale_threshold_is_three_default_intervals() -> None:
    """SyncStale fires past 3 x SYNC_INTERVAL_S at its default (300 s)."""
    from daemon.config.sync import SYNC_INTERVAL_S

    stale = next(rule for rule in rules() if rule["alert"] == "CustomersMngrSyncStale")
    assert SYNC_INTERVAL_S.default is not None
    assert stale["expr"].strip().endswith(f"> {3 * int(SYNC_INTERVAL_S.default)}")


def test_scrape_config_targets_both_services_and_loads_the_rules() -> None:
    """prometheus.yml scrapes the api (API_PORT) and syncer (METRICS_PORT) services and loads rules.yml."""
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["rules.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "customers-mngr" and job["metrics_path"] == "/metrics"
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert targets == {"api:8080", "syncer:9102"}
    target_down = next(rule for rule in rules() if rule["alert"] == "CustomersMngrTargetDown")
    assert f'job="{job["job_name"]}"' in target_down["expr"]


def test_promtool_checks_rules_and_config(promtool: str) -> None:
    """`promtool check rules` and `promtool check config` accept the files."""
    for args in (["check", "rules", str(RULES)], ["check", "config", str(CONFIG)]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_alert_scenarios(promtool: str) -> None:
    """`promtool test rules`: each alert fires in its scenario, with the expected labels and text, and not before."""
    done = subprocess.run(
        [promtool, "test", "rules", SCENARIOS.name],
        cwd=SCENARIOS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {
        case["alertname"] for test in yaml.safe_load(SCENARIOS.read_text())["tests"] for case in test["alert_rule_test"]
    }
    assert tested >= REQUIRED


def test_promtool_scenarios_can_fail(promtool: str, tmp_path: Path) -> None:
    """With the stale threshold raised, the scenario expecting SyncStale at 17 minutes fails."""
    (tmp_path / "docker/prometheus").mkdir(parents=True)
    (tmp_path / "docker/prometheus/rules.yml").write_text(RULES.read_text().replace(") > 900", ") > 5000"))
    (tmp_path / "tests/observability").mkdir(parents=True)
    (tmp_path / "tests/observability" / SCENARIOS.name).write_text(SCENARIOS.read_text())
    done = subprocess.run(
        [promtool, "test", "rules", SCENARIOS.name],
        cwd=tmp_path / "tests/observability",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "CustomersMngrSyncStale" in done.stdout + done.stderr
