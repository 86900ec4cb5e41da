"""The Grafana dashboard and its provisioning: well formed, and only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.observability.metrics import PREFIX
from tests.observability.promql import Selector, grafana_to_promql, selectors
from tests.observability.support import exposition

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker/grafana/dashboards/customers-mngr.json"
PROVISIONING = ROOT / "docker/grafana/provisioning"


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside a collapsed row
    return out


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels(dashboard) for t in p.get("targets", [])]


def template_selectors(dashboard: dict[str, Any]) -> list[Selector]:
    """The selectors inside the template variables' label_values(selector, label) queries."""
    found = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, query
        found.extend(selectors(grafana_to_promql(match.group(1))))
    return found


def test_every_dashboard_query_references_only_exposed_metrics() -> None:
    """Each metric, label name and fixed label value in the dashboard's PromQL exists in a real exposition."""
    reference = exposition()
    problems = []
    count = 0
    for title, expr in expressions(load()):
        for selector in selectors(grafana_to_promql(expr)):
            count += 1
            problems += [f"{title}: {p}" for p in reference.problems(selector)]
    for selector in template_selectors(load()):
        problems += reference.problems(selector)
    assert count > 40
    assert problems == []


def test_the_check_catches_a_misspelt_metric_and_label() -> None:
    """The reference check flags a wrong suffix, an unknown label and a value outside a fixed set."""
    reference = exposition()
    bad = [
        "rate(customers_mngr_sync_runs[5m])",  # counters are exposed with _total
        "customers_mngr_api_request_duration_seconds",  # a histogram has _bucket/_sum/_count only
        'customers_mngr_actor_up{name="api"}',
        'customers_mngr_sync_runs_total{status="success"}',
    ]
    for expr in bad:
        assert any(reference.problems(s) for s in selectors(expr)), expr


def test_every_declared_metric_has_a_panel() -> None:
    """Every customers_mngr_* family the daemon declares is shown somewhere on the dashboard."""
    reference = exposition()
    shown = {s.metric for _, e in expressions(load()) for s in selectors(grafana_to_promql(e))}
    families = set()
    for name in reference.full.names():
        if name.startswith(PREFIX) and not name.endswith("_created"):
            families.add(re.sub(r"_(total|bucket|sum|count)$", "", name))
    shown_families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in shown}
    assert families - shown_families == set(), "add a panel for these metrics"


@pytest.mark.parametrize(
    "topic",
    [
        "Sync runs by status",
        "Records by outcome",
        "Run duration",
        "Freshness",
        "Provider requests by status class",
        "Provider retries by reason",
        "Requests by route",
        "Latency percentiles by route",
        "Errors by route",
        "DB pool usage",
        "Actors up and restarts",
        "Sync leader",
    ],
)
def test_the_issue_panels_exist(topic: str) -> None:
    """The panels the issue asks for are on the dashboard, each with at least one query."""
    by_title = {p["title"]: p for p in panels(load())}
    assert topic in by_title and by_title[topic]["targets"]


def test_dashboard_is_well_formed() -> None:
    """Stable uid, unique panel ids and titles, no overlapping tiles, every query on the datasource variable."""
    dashboard = load()
    assert dashboard["uid"] == "customers-mngr" and dashboard["title"]
    every = panels(dashboard)
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in every if p["type"] != "row"]
    assert len(titles) == len(set(titles))
    cells: set[tuple[int, int]] = set()
    for p in every:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        tile = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not tile & cells, f"{p['title']} overlaps another panel"
        cells |= tile
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert p.get("description"), f"{p['title']} has no description"
            for target in p["targets"]:
                assert target["datasource"] == p["datasource"] and target["expr"].strip()
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= names


def test_every_query_is_scoped_by_job_and_instance() -> None:
    """Each selector of a customers_mngr or process metric honours the $job and $instance variables."""
    for title, expr in expressions(load()):
        for selector in selectors(expr):
            labels = {(m.label, m.value) for m in selector.matchers}
            assert {("job", "$job"), ("instance", "$instance")} <= labels, f"{title}: {selector.metric}"


def test_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    """The datasource provisioning names uid `prometheus` at the compose service; the provider loads our folder."""
    datasources = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    template = next(v for v in load()["templating"]["list"] if v["name"] == "datasource")
    assert template["current"]["value"] == source["uid"]
    providers = yaml.safe_load((PROVISIONING / "dashboards/customers-mngr.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
