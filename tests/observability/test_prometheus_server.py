"""A real Prometheus scrapes a real daemon: every dashboard query and every alert rule evaluates.

Prometheus comes from Debian's `prometheus` package (the same one as promtool);
the test is skipped when it cannot be found or installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import base_env
from tests.observability.test_alert_rules import RULES, find_promtool
from tests.observability.test_dashboard import expressions, load
from tests.support.daemon_proc import DaemonProcess, free_port, http_get, wait_http
from tests.support.mysql import MysqlServer

pytestmark = pytest.mark.slow

# Panels that have data as soon as a process runs, whatever it has done yet.
ALWAYS_DATA = ("Version", "Sync leader", "DB pool usage", "Actors up and restarts", "Process memory")


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (find_promtool() and shutil.which("prometheus"))


class Prometheus:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> Any:
        status, body = http_get(f"{self.base}{path}?{urllib.parse.urlencode(params)}", timeout=10)
        document = json.loads(body)
        assert status == 200 and document["status"] == "success", (path, params, document)
        return document["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result = self.get("/api/v1/query", query=expr)["result"]
        return result if isinstance(result, list) else [result]

    def wait(self, expr: str, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.query(expr):
                return
            time.sleep(0.5)
        raise AssertionError(f"{expr} stayed empty for {timeout}s")


@pytest.fixture
def prometheus_scraping(mysql: MysqlServer, session_db: str, tmp_path: Path) -> Iterator[Prometheus]:
    """A daemon in mode all, and a Prometheus scraping it every second with our rules loaded."""
    binary = prometheus_binary()
    if binary is None:
        pytest.skip("prometheus unavailable (not on PATH, and Debian's package could not be installed)")
    api_port, prom_port = free_port(), free_port()
    env = {**base_env(mysql, session_db), "API_PORT": str(api_port), "DEV_KEY_FILE": str(tmp_path / "k.json")}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "customers-mngr",
                "static_configs": [{"targets": [f"127.0.0.1:{api_port}"], "labels": {"service": "api"}}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    with DaemonProcess(["run", "--mode", "all"], env) as daemon:
        wait_http(f"http://127.0.0.1:{api_port}/ready", proc=daemon.proc)
        prom = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        try:
            wait_http(f"http://127.0.0.1:{prom_port}/-/ready", timeout=60)
            yield Prometheus(f"http://127.0.0.1:{prom_port}")
        finally:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(10)
        assert daemon.stop()[0] == 0


def test_dashboard_queries_and_rules_evaluate_on_a_real_prometheus(prometheus_scraping: Prometheus) -> None:
    """Every dashboard query is valid PromQL with data where data must exist; every rule evaluates healthily."""
    prom = prometheus_scraping
    prom.wait('up{job="customers-mngr"} == 1')
    prom.wait('count_over_time(customers_mngr_build_info{job="customers-mngr"}[1m]) >= 3')
    assert "customers-mngr" in prom.get("/api/v1/label/job/values", **{"match[]": "customers_mngr_build_info"})
    empty_but_required = []
    for title, expr in expressions(load()):
        concrete = (
            expr.replace("$__rate_interval", "5s")
            .replace("$__range", "1m")
            .replace('"$job"', '"customers-mngr"')
            .replace('"$instance"', '".*"')
        )
        result = prom.query(concrete)  # raises on a PromQL error
        if title in ALWAYS_DATA and not result:
            empty_but_required.append(title)
    assert empty_but_required == []
    deadline = time.monotonic() + 30
    while True:
        groups = prom.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) == len([r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]])
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    firing = [a["labels"]["alertname"] for a in prom.get("/api/v1/alerts")["alerts"] if a["state"] == "firing"]
    assert "CustomersMngrTargetDown" not in firing and "CustomersMngrSyncStale" not in firing
