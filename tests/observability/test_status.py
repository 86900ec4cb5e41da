"""`customers-mngr status`: figures from /metrics and /sync/runs, over real HTTP, tokens never shown.

The daemon here is a small aiohttp server exposing a real `Metrics` registry
and a /sync/runs answer; tests/observability/test_end_to_end.py runs the
command against the real daemon.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, generate_latest

from daemon.cli import main
from daemon.cli.status import RunsResult, Snapshot, render
from daemon.observability.metrics import Metrics
from daemon.observability.scrape import Scrape, bucket_bound, histogram_quantile
from tests.support.daemon_proc import free_port

TOKEN = "s3cr3t-admin-token-0123456789abcdef"
ServerFactory = Callable[..., Awaitable[TestServer]]

RUNS = [
    {
        "id": 42,
        "started_at": "2025-01-02T03:04:00.000000Z",
        "finished_at": "2025-01-02T03:04:12.500000Z",
        "status": "partial",
        "inserted": 0,
        "updated": 7,
        "unchanged": 990,
        "rejected": 3,
        "deleted": 1,
        "restored": 0,
        "error": None,
    },
    {
        "id": 41,
        "started_at": "2025-01-02T02:59:00",
        "finished_at": "2025-01-02T02:59:02",
        "status": "failed",
        "counts": {"inserted": 0, "updated": 0, "unchanged": 0, "rejected": 0, "deleted": 0, "restored": 0},
        "error": "provider answered 503\x1b[31m after 5 retries",
    },
]


def daemon_metrics(*, actors: tuple[str, ...] = ("api", "syncer"), last_success_age: float = 125.0) -> Metrics:
    m = Metrics(CollectorRegistry(), git_commit="abc123def456")
    for actor in actors:
        m.init_actor(actor)
        m.actor_up.labels(actor=actor).set(1)
    m.actor_restarts.labels(actor="syncer").inc(2)
    m.sync_runs.labels(status="ok").inc(3)
    m.sync_runs.labels(status="failed").inc(1)
    for outcome, n in (("inserted", 1000), ("updated", 7), ("unchanged", 990), ("rejected", 3)):
        m.sync_records.labels(outcome=outcome).inc(n)
    now = time.time()
    m.sync_last_success.set(now - last_success_age)
    m.sync_last_run.set(now - last_success_age)
    m.sync_leader.set(1)
    m.sync_leader_changes.inc()
    m.sync_run_duration.observe(3.0)
    m.provider_requests.labels(status_class="2xx").inc(11)
    m.provider_retries.labels(reason="status_429").inc(2)
    m.api_requests.labels(route="/clientes", method="GET", status="200").inc(40)
    m.api_requests.labels(route="/clientes/{id}", method="GET", status="503").inc(2)
    m.api_requests.labels(route="/clientes", method="GET", status="401").inc(4)
    m.api_requests.labels(route="/metrics", method="GET", status="200").inc(50)
    for _ in range(10):
        m.api_request_duration.labels(route="/clientes").observe(0.02)
    m.api_in_flight.set(3)  # two requests being served, plus the scrape reading it
    m.api_auth_failures.labels(reason="missing").inc(3)
    m.api_auth_failures.labels(reason="unknown").inc(1)
    m.db_pool_size.labels(state="in_use").set(3)
    m.db_pool_size.labels(state="max").set(10)
    m.db_pool_size.labels(state="total").set(4)
    m.db_pool_size.labels(state="free").set(1)
    m.key_values.labels(key_id="k2025").set(5000)
    return m


class FakeDaemon:
    """/metrics from a real registry (10 more /clientes requests per scrape), /sync/runs with an admin token."""

    def __init__(self, metrics: Metrics, *, runs_status: int = 200, redirect_to: str | None = None) -> None:
        self.metrics = metrics
        self.runs_status = runs_status
        self.redirect_to = redirect_to
        self.runs_requests: list[dict[str, str]] = []
        self.metrics_requests: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.scrape)
        app.router.add_get("/sync/runs", self.runs)
        return app

    async def scrape(self, request: web.Request) -> web.Response:
        self.metrics_requests.append(dict(request.headers))
        body = generate_latest(self.metrics.registry)
        self.metrics.api_requests.labels(route="/clientes", method="GET", status="200").inc(10)
        self.metrics.api_requests.labels(route="/metrics", method="GET", status="200").inc()
        return web.Response(body=body, content_type="text/plain")

    async def runs(self, request: web.Request) -> web.Response:
        self.runs_requests.append({"authorization": request.headers.get("Authorization", ""), **request.query})
        if self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"title": "unauthorized"}, status=401)
        if self.runs_status != 200:
            return web.json_response({"title": "nope"}, status=self.runs_status)
        return web.json_response(RUNS)


async def start(aiohttp_server: ServerFactory, fake: FakeDaemon) -> str:
    server = await aiohttp_server(fake.app())
    return f"http://127.0.0.1:{server.port}"


async def status(*argv: str) -> int:
    return await asyncio.to_thread(main, ["status", *argv])


async def test_status_prints_the_figures(
    aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Freshness, counts, rates (from two scrapes), restarts, leader, pool and the runs table, exit 0."""
    monkeypatch.setenv("CUSTOMERS_MNGR_TOKEN", TOKEN)
    fake = FakeDaemon(daemon_metrics())
    url = await start(aiohttp_server, fake)
    assert await status("--url", url, "--window", "0.3", "--runs", "2") == 0
    out = capsys.readouterr().out
    assert "1.0.0 (commit abc123def456" in out
    assert "api up (0 restarts) · syncer up (2 restarts)" in out
    assert re.search(r"last success 2m [5-9]s ago", out)
    assert "STALE" not in out
    assert "leader yes (1 leadership changes)" in out
    assert "runs since start: ok 3 · partial 0 · failed 1" in out
    assert "records: inserted 1000 · updated 7 · unchanged 990 · rejected 3 · deleted 0 · restored 0" in out
    assert "requests: 2xx 11 · retries: status_429 2" in out
    # two scrapes: 10 /clientes requests between them, the /metrics route left out of the rate
    rate = float(re.search(r"now: ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    assert 10 / 2.0 <= rate <= 10 / 0.3
    assert "5xx 0.00/s (0.0%)" in out
    # totals since start, from the second scrape: 40 + 10 + 2 + 4 requests, /metrics excluded
    assert "since start: 56 requests" in out and "5xx 2 (3.6%) · 4xx 4" in out
    assert "in flight 2 (besides this scrape)" in out
    assert "latency since start: p50 ≤ 25 ms p95 ≤ 25 ms p99 ≤ 25 ms" in out
    assert "auth failures: missing 3 · unknown 1 · forbidden 0 · demo_refused 0" in out
    assert "in use 3 / max 10 (open 4, free 1)" in out
    assert "k2025 5000" in out
    assert re.search(r"\s42\s+2025-01-02 03:04:00\s+12\.5 s\s+partial\s+0\s+7\s+990\s+3\s+1\s+0", out)
    assert re.search(r"\s41\s+2025-01-02 02:59:00\s+2\.0 s\s+failed", out)
    assert "provider answered 503?[31m after 5 retries" in out  # no raw escape reaches the terminal
    assert "\x1b" not in out
    assert fake.runs_requests == [{"authorization": f"Bearer {TOKEN}", "limit": "2"}]
    assert all("Authorization" not in h for h in fake.metrics_requests)  # the token goes to /sync/runs only
    assert TOKEN not in out and len(out.splitlines()) <= 25


async def test_one_scrape_gives_totals_only(aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """--window 0 scrapes once: no current rate, totals since start; without a token the runs are skipped."""
    fake = FakeDaemon(daemon_metrics())
    url = await start(aiohttp_server, fake)
    assert await status("--url", url + "/metrics", "--window", "0") == 0
    out = capsys.readouterr().out
    assert "now:" not in out and "since start: 46 requests" in out
    assert "set CUSTOMERS_MNGR_TOKEN to an admin token" in out
    assert len(fake.metrics_requests) == 1 and fake.runs_requests == []


@pytest.mark.parametrize(
    "case",
    [
        (200, "wrong-token-value-zzzz", "refused (401): the token in STATUS_TOKEN is not known"),
        (403, TOKEN, "refused (403): the token in STATUS_TOKEN is not an admin token"),
        (500, TOKEN, "GET /sync/runs answered 500"),
    ],
)
async def test_refused_runs_say_why_without_the_token(
    aiohttp_server: ServerFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[int, str, str],
) -> None:
    """A refused or failing /sync/runs is one line naming the variable, never the token; still exit 0."""
    runs_status, token, expected = case
    monkeypatch.setenv("STATUS_TOKEN", token)
    url = await start(aiohttp_server, FakeDaemon(daemon_metrics(), runs_status=runs_status))
    assert await status("--url", url, "--window", "0", "--token-env", "STATUS_TOKEN") == 0
    captured = capsys.readouterr()
    assert expected in captured.out
    assert token not in captured.out + captured.err


async def test_a_redirect_never_carries_the_token(
    aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/sync/runs answering a redirect is reported, not followed: the other server never sees the token."""
    monkeypatch.setenv("CUSTOMERS_MNGR_TOKEN", TOKEN)
    elsewhere = FakeDaemon(daemon_metrics())
    other = await start(aiohttp_server, elsewhere)
    url = await start(aiohttp_server, FakeDaemon(daemon_metrics(), redirect_to=f"{other}/sync/runs"))
    assert await status("--url", url, "--window", "0") == 0
    assert "answered 302" in capsys.readouterr().out
    assert elsewhere.runs_requests == []


async def test_syncer_only_process(
    aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a syncer-only process: sync figures shown, API said absent, /sync/runs not even asked."""
    monkeypatch.setenv("CUSTOMERS_MNGR_TOKEN", TOKEN)
    fake = FakeDaemon(daemon_metrics(actors=("syncer", "probe")))
    url = await start(aiohttp_server, fake)
    assert await status("--url", url, "--window", "0") == 0
    out = capsys.readouterr().out
    assert "probe up (0 restarts) · syncer up (2 restarts)" in out
    assert "leader yes" in out and "api         not served by this process" in out
    assert "not served by this process (no API here)" in out
    assert fake.runs_requests == []


async def test_api_only_process_takes_freshness_from_the_runs(
    aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An api-only process has no sync gauges: freshness comes from the newest ok/partial run in /sync/runs."""
    monkeypatch.setenv("CUSTOMERS_MNGR_TOKEN", TOKEN)
    url = await start(aiohttp_server, FakeDaemon(daemon_metrics(actors=("api",))))
    assert await status("--url", url, "--window", "0", "--runs", "2") == 0
    out = capsys.readouterr().out
    assert "(2025-01-02 03:04:12, from /sync/runs)" in out and "STALE" in out
    assert "leader" not in out


def test_stale_and_failed_last_run_are_flagged() -> None:
    """Past 3 x SYNC_INTERVAL_S the freshness says STALE; a last run newer than the last success is called out."""
    m = daemon_metrics(last_success_age=1000)
    m.sync_last_run.set(time.time() - 30)
    scrape = Scrape.parse(generate_latest(m.registry).decode())
    out = render(Snapshot(url="http://x", now=time.time(), first=scrape, runs=RunsResult(unavailable="n/a")))
    assert "STALE (> 3 x SYNC_INTERVAL_S = 900 s)" in out
    assert re.search(r"last run 3\ds ago did NOT succeed", out)
    fresh = render(Snapshot(url="http://x", now=time.time(), first=scrape, runs=RunsResult(), sync_interval_s=600))
    assert "STALE" not in fresh and "none recorded yet" in fresh


async def test_unreachable_or_not_metrics_exits_1(
    aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening, or a body that is not an exposition: one line on stderr, exit 1."""
    assert await status("--url", f"http://127.0.0.1:{free_port()}", "--timeout", "1") == 1
    assert "unreachable" in capsys.readouterr().err

    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html>{not metrics</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/metrics", html)
    server = await aiohttp_server(app)
    assert await status("--url", f"http://127.0.0.1:{server.port}", "--window", "0") == 1
    err = capsys.readouterr().err
    assert "not a Prometheus exposition" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--url", "ftp://127.0.0.1/"], {}),
        (["--url", "http://127.0.0.1:1", "--token-env", "UNSET_TOKEN_VARIABLE"], {}),
        (["--url", "http://127.0.0.1:1", "--window", "-1"], {}),
    ],
)
def test_bad_usage_exits_2(
    argv: list[str], env: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-http URL, a named token variable that is unset, a negative window: exit 2, one line."""
    monkeypatch.delenv("UNSET_TOKEN_VARIABLE", raising=False)
    assert main(["status", *argv]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_credentials_in_the_url_are_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    """user:password@ in --url never reaches the output, even in the error line."""
    assert main(["status", "--url", f"http://user:hunter2@127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err and "http://127.0.0.1:" in captured.err


def test_quantiles_from_buckets() -> None:
    """histogram_quantile interpolates as PromQL does; bucket_bound reports the bucket's upper bound."""
    buckets = {0.1: 10.0, 0.5: 30.0, 1.0: 40.0, float("inf"): 40.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)
    assert bucket_bound(0.5, buckets) == (0.5, False)
    assert bucket_bound(0.99, buckets) == (1.0, False)
    assert bucket_bound(0.99, {0.1: 1.0, float("inf"): 10.0}) == (0.1, True)
    assert histogram_quantile(0.5, {float("inf"): 0.0}) is None and bucket_bound(0.5, {}) is None


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """`status --help` names the token variable and the exit codes."""
    with pytest.raises(SystemExit) as exited:
        main(["status", "--help"])
    assert exited.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "usage: customers-mngr status" in out and "CUSTOMERS_MNGR_TOKEN" in out
    assert "Exit codes: 0 printed; 1 /metrics unreachable or unreadable; 2 bad usage." in out
