"""`customers-mngr status [--url URL]`: a one-screen summary of a running daemon.

Reads `GET /metrics` twice, `--window` seconds apart (current rates come
from the difference; totals are since the process started), and, when an
admin token is available, `GET /sync/runs` for the last runs with their
counts. Against a syncer-only process (METRICS_PORT, no API) it shows what
the metrics tell. The token is read from an environment variable, never
from the command line, and never printed.

Exit codes: 0 the summary was printed; 1 /metrics could not be read (down,
refused, not an exposition); 2 bad usage (URL, missing token variable).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from daemon.cli.common import fail
from daemon.observability.metrics import (
    API_AUTH_FAILURE_REASONS,
    PREFIX,
    RECORD_OUTCOMES,
    RUN_STATUSES,
)
from daemon.observability.scrape import Scrape, ScrapeError, bucket_bound

__all__ = ("DEFAULT_TOKEN_ENV", "RunsResult", "Snapshot", "register", "render")

DEFAULT_TOKEN_ENV = "CUSTOMERS_MNGR_TOKEN"  # noqa: S105 - the name of a variable, not a token
_MAX_BODY = 16 * 1024 * 1024
_STALE_INTERVALS = 3  # the same threshold as the SyncStale alert rule
_P = PREFIX


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status",
        help="one-screen summary of a running daemon (metrics and last sync runs)",
        description="Print a one-screen summary of a running daemon from GET /metrics and GET /sync/runs: "
        "freshness, last runs with their counts, request and error rates, restarts, leader, pool. "
        "Rates are sampled from two scrapes --window seconds apart; totals are since the process started. "
        f"/sync/runs needs an admin token, read from the variable named by --token-env (default {DEFAULT_TOKEN_ENV}); "
        "without one, or against a syncer-only process, the runs table is left out. "
        "Exit codes: 0 printed; 1 /metrics unreachable or unreadable; 2 bad usage.",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="base URL of the daemon (default http://127.0.0.1:$API_PORT, or :$METRICS_PORT when MODE=syncer)",
    )
    parser.add_argument(
        "--token-env",
        default=None,
        metavar="VAR",
        help=f"environment variable holding an admin API token (default {DEFAULT_TOKEN_ENV}, optional)",
    )
    parser.add_argument(
        "--window", type=float, default=1.0, help="seconds between the two scrapes; 0 = one scrape (default 1)"
    )
    parser.add_argument("--runs", type=int, default=5, help="how many recent runs to list (default 5)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per HTTP request (default 5)")
    parser.set_defaults(handler=handle)


# ---------------------------------------------------------------- fetching


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect must not carry the token to another place: treat it as the answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    # No proxy from the environment either: the token goes straight to the daemon asked for.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class FetchError(Exception):
    """One line, safe to print (no token, no body)."""


def _get(url: str, *, timeout: float, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Accept": "application/json, text/plain;q=0.9"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked by _base_url
    try:
        with _opener().open(request, timeout=timeout) as response:
            return int(response.status), response.read(_MAX_BODY)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), b""
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise FetchError(f"unreachable ({reason})") from None


def _scrape(base: str, *, timeout: float) -> Scrape:
    status, body = _get(f"{base}/metrics", timeout=timeout)
    if status != 200:
        raise FetchError(f"answered {status}")
    try:
        return Scrape.parse(body.decode("utf-8", errors="replace"))
    except ScrapeError as exc:
        raise FetchError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class RunsResult:
    """The runs from /sync/runs, or why there are none to show."""

    runs: Sequence[Mapping[str, Any]] = ()
    unavailable: str | None = None


def _fetch_runs(base: str, *, token: str | None, limit: int, timeout: float, token_env: str) -> RunsResult:
    if token is None:
        return RunsResult(unavailable=f"not shown: set {token_env} to an admin token to list them")
    try:
        status, body = _get(f"{base}/sync/runs?limit={limit}", timeout=timeout, token=token)
    except FetchError as exc:
        return RunsResult(unavailable=f"GET /sync/runs {exc}")
    reasons = {
        401: f"refused (401): the token in {token_env} is not known to this daemon",
        403: f"refused (403): the token in {token_env} is not an admin token",
        404: "not served here (404): a syncer-only process has no API; point --url at the API",
    }
    if status != 200:
        return RunsResult(unavailable=reasons.get(status, f"GET /sync/runs answered {status}"))
    try:
        parsed = json.loads(body)
    except ValueError:
        return RunsResult(unavailable="GET /sync/runs did not answer JSON")
    if isinstance(parsed, dict):  # tolerate an envelope: {"runs": [...]} or {"items": [...]}
        parsed = parsed.get("runs", parsed.get("items"))
    if not isinstance(parsed, list):
        return RunsResult(unavailable="GET /sync/runs answered an unexpected shape")
    return RunsResult(runs=[r for r in parsed if isinstance(r, dict)])


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything `render` needs; built by `handle`, or directly by tests."""

    url: str
    now: float
    first: Scrape
    second: Scrape | None = None  # None: a single scrape, no current rates
    window_s: float = 0.0
    runs: RunsResult = field(default_factory=RunsResult)
    sync_interval_s: float = 300.0


def render(snap: Snapshot) -> str:
    s = snap.second or snap.first
    actors = s.by(f"{_P}_actor_up", "actor")
    lines = [f"customers-mngr status — {snap.url} — {_stamp(snap.now)}"]
    lines += _build_lines(s, snap.now)
    lines += _actor_lines(s, actors)
    lines += _sync_lines(snap, s, has_syncer="syncer" in actors)
    lines += _api_lines(snap, s, has_api="api" in actors)
    lines += _db_lines(s)
    lines += _runs_lines(snap)
    return "\n".join(lines) + "\n"


def _row(title: str, text: str) -> str:
    return f"{title:<11} {text}".rstrip()


def _more(text: str) -> str:
    return _row("", text)


def _build_lines(s: Scrape, now: float) -> list[str]:
    info = s.samples(f"{_P}_build_info")
    labels = info[0].labels if info else {}
    text = (
        f"{labels.get('version', '?')} (commit {labels.get('git_commit', '?')}, "
        f"Python {labels.get('python_version', '?')})"
    )
    started = s.value("process_start_time_seconds")
    if started:
        text += f" · up {_duration(now - started)}"
    return [_row("build", text)]


def _actor_lines(s: Scrape, actors: Mapping[str, float]) -> list[str]:
    if not actors:
        return [_row("actors", "none reported")]
    restarts = s.by(f"{_P}_actor_restarts_total", "actor")
    parts = [
        f"{name} {'up' if up >= 1 else 'DOWN'} ({_count(restarts.get(name, 0))} restarts)"
        for name, up in sorted(actors.items())
    ]
    return [_row("actors", " · ".join(parts))]


def _sync_lines(snap: Snapshot, s: Scrape, *, has_syncer: bool) -> list[str]:
    lines = [_row("sync", _freshness(snap, s, has_syncer=has_syncer))]
    if not has_syncer:
        return lines
    leader = "yes" if (s.value(f"{_P}_sync_leader") or 0) >= 1 else "no"
    changes = _count(s.total(f"{_P}_sync_leader_changes_total"))
    skipped = _count(s.total(f"{_P}_sync_skipped_runs_total"))
    lines.append(_more(f"leader {leader} ({changes} leadership changes) · runs skipped as follower {skipped}"))
    runs = s.by(f"{_P}_sync_runs_total", "status")
    text = "runs since start: " + " · ".join(f"{st} {_count(runs.get(st, 0))}" for st in RUN_STATUSES)
    text += _percentiles(s, f"{_P}_sync_run_duration_seconds", (0.5, 0.99), prefix=" · duration ")
    lines.append(_more(text))
    records = s.by(f"{_P}_sync_records_total", "outcome")
    lines.append(_more("records: " + " · ".join(f"{o} {_count(records.get(o, 0))}" for o in RECORD_OUTCOMES)))
    anomalies = {k: v for k, v in s.by(f"{_P}_sync_anomalies_total", "kind").items() if v}
    unknown = _count(s.total(f"{_P}_sync_unknown_fields_total"))
    odd = " · ".join(f"{k} {_count(v)}" for k, v in anomalies.items()) or "none"
    lines.append(_more(f"anomalies kept: {odd} · unknown provider fields {unknown}"))
    provider = {k: v for k, v in s.by(f"{_P}_provider_requests_total", "status_class").items() if v}
    retries = {k: v for k, v in s.by(f"{_P}_provider_retries_total", "reason").items() if v}
    text = "requests: " + (" · ".join(f"{k} {_count(v)}" for k, v in provider.items()) or "none")
    text += " · retries: " + (" · ".join(f"{k} {_count(v)}" for k, v in retries.items()) or "none")
    text += _percentiles(s, f"{_P}_provider_request_duration_seconds", (0.5, 0.95), prefix=" · ")
    lines.append(_row("provider", text))
    return lines


def _freshness(snap: Snapshot, s: Scrape, *, has_syncer: bool) -> str:
    """now - last success: from this process's gauge, else from the runs table (api-only processes)."""
    last_success = s.value(f"{_P}_sync_last_success_timestamp_seconds") if has_syncer else None
    source = "this process"
    if not last_success:
        last_success = _last_success_from_runs(snap.runs)
        source = "/sync/runs"
    if not last_success:
        if not has_syncer and snap.runs.unavailable:
            return "freshness unknown (no syncer in this process and no runs listed)"
        return "no successful run yet"
    age = snap.now - last_success
    text = f"last success {_duration(age)} ago ({_stamp(last_success)}, from {source})"
    last_run = s.value(f"{_P}_sync_last_run_timestamp_seconds") if has_syncer else None
    if last_run and last_run > last_success:
        text += f" · last run {_duration(snap.now - last_run)} ago did NOT succeed"
    limit = _STALE_INTERVALS * snap.sync_interval_s
    if age > limit:
        text += f" · STALE (> {_STALE_INTERVALS} x SYNC_INTERVAL_S = {limit:g} s)"
    return text


def _last_success_from_runs(runs: RunsResult) -> float | None:
    for run in runs.runs:  # newest first
        if run.get("status") in ("ok", "partial"):
            finished = _parse_time(run.get("finished_at"))
            if finished is not None:
                return finished
    return None


def _api_lines(snap: Snapshot, s: Scrape, *, has_api: bool) -> list[str]:
    if not has_api:
        return [_row("api", "not served by this process")]
    name = f"{_P}_api_requests_total"
    lines: list[str] = []
    if snap.second is not None and snap.window_s > 0:
        rates = {
            cls: (_requests(snap.second, name, cls) - _requests(snap.first, name, cls)) / snap.window_s
            for cls in ("all", "4", "5")
        }
        ratio = rates["5"] / rates["all"] if rates["all"] > 0 else 0.0
        lines.append(
            _row(
                "api",
                f"now: {rates['all']:.2f} req/s · 5xx {rates['5']:.2f}/s ({ratio:.1%}) · 4xx {rates['4']:.2f}/s "
                f"(two scrapes {snap.window_s:.1f} s apart, /metrics itself excluded)",
            )
        )
    total, errors, client = (_requests(s, name, cls) for cls in ("all", "5", "4"))
    ratio = errors / total if total else 0.0
    started = s.value("process_start_time_seconds")
    average = f" · {total / (snap.now - started):.2f} req/s on average" if started and snap.now > started else ""
    text = f"since start: {_count(total)} requests{average} · 5xx {_count(errors)} ({ratio:.1%}) · 4xx {_count(client)}"
    lines.append(_row("" if lines else "api", text))
    in_flight = _count(max(0.0, s.total(f"{_P}_api_requests_in_flight") - 1))  # less our own scrape
    latency = _percentiles(s, f"{_P}_api_request_duration_seconds", (0.5, 0.95, 0.99), prefix="")
    lines.append(
        _more(f"in flight {in_flight} (besides this scrape) · latency since start: {latency or 'no requests yet'}")
    )
    auth = s.by(f"{_P}_api_auth_failures_total", "reason")
    lines.append(
        _more("auth failures: " + " · ".join(f"{r} {_count(auth.get(r, 0))}" for r in API_AUTH_FAILURE_REASONS))
    )
    return lines


def _requests(s: Scrape, name: str, status_class: str) -> float:
    """API requests of a status class ('all', '4', '5'), the /metrics route left out."""
    return math.fsum(
        sample.value
        for sample in s.samples(name)
        if sample.labels.get("route") != "/metrics"
        and (status_class == "all" or sample.labels.get("status", "").startswith(status_class))
    )


def _db_lines(s: Scrape) -> list[str]:
    pool = s.by(f"{_P}_db_pool_connections", "state")
    errors = {k: v for k, v in s.by(f"{_P}_db_query_errors_total", "kind").items() if v}
    text = (
        f"in use {_count(pool.get('in_use', 0))} / max {_count(pool.get('max', 0))} "
        f"(open {_count(pool.get('total', 0))}, free {_count(pool.get('free', 0))})"
    )
    text += _percentiles(s, f"{_P}_db_pool_acquire_wait_seconds", (0.99,), prefix=" · acquire wait ")
    text += " · query errors: " + (" · ".join(f"{k} {_count(v)}" for k, v in errors.items()) or "none")
    lines = [_row("db pool", text)]
    keys = s.by(f"{_P}_encrypted_values", "key_id")
    failures = _count(s.total(f"{_P}_decrypt_failures_total"))
    values = " · ".join(f"{k} {_count(v)}" for k, v in sorted(keys.items())) or "none counted yet"
    lines.append(_row("keys", f"stored values by key id: {values} · decrypt failures {failures}"))
    return lines


_RUN_COLUMNS = ("inserted", "updated", "unchanged", "rejected", "deleted", "restored")


def _runs_lines(snap: Snapshot) -> list[str]:
    if snap.runs.unavailable is not None:
        return ["", f"last runs   {snap.runs.unavailable}"]
    if not snap.runs.runs:
        return ["", "last runs   none recorded yet"]
    header = f"  {'id':>6}  {'started (UTC)':<19}  {'took':>7}  {'status':<7}"
    header += "".join(f" {c:>9}" for c in _RUN_COLUMNS) + "  error"
    lines = ["", "last runs (GET /sync/runs, newest first)", header]
    for run in snap.runs.runs:
        nested = run.get("counts")
        counts: Mapping[str, Any] = nested if isinstance(nested, dict) else run  # flat or {"counts": {...}}
        started, finished = _parse_time(run.get("started_at")), _parse_time(run.get("finished_at"))
        took = _seconds(finished - started) if started and finished else "running" if started else "?"
        row = f"  {_cell(run.get('id')):>6}  {_stamp(started) if started else '?':<19}  {took:>7}"
        row += f"  {_cell(run.get('status')):<7}"
        row += "".join(f" {_cell(counts.get(c)):>9}" for c in _RUN_COLUMNS)
        error = run.get("error")
        row += f"  {_cell(error)[:60]}" if error else ""
        lines.append(row)
    return lines


# ---------------------------------------------------------------- small formatters


def _percentiles(s: Scrape, histogram: str, qs: Sequence[float], *, prefix: str) -> str:
    """ "p50 ≤ 25 ms p99 > 10 s": bucket bounds, not interpolations, so nothing is claimed that was not measured."""
    buckets = s.buckets(histogram)
    parts = []
    for q in qs:
        found = bucket_bound(q, buckets)
        if found is not None:
            bound, above = found
            parts.append(f"p{round(q * 100)} {'>' if above else '≤'} {_seconds(bound)}")
    return prefix + " ".join(parts) if parts else ""


def _cell(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)  # a terminal gets no control characters


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.001 else f"{value * 1000:.1f} ms"
    return f"{value:.1f} s" if value < 120 else _duration(value)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _stamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the DB stores UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# ---------------------------------------------------------------- the command


def _default_base(env: Mapping[str, str]) -> str:
    mode = env.get("MODE", "all").strip().lower() or "all"
    port = env.get("METRICS_PORT", "9102") if mode == "syncer" else env.get("API_PORT", "8080")
    return f"http://127.0.0.1:{port.strip() or '8080'}"


def _base_url(raw: str) -> str | None:
    """The base URL without a trailing /metrics or slash; None when it is not http(s)."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    path = parts.path.rstrip("/")
    path = path.removesuffix("/metrics")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _display(url: str) -> str:
    """The URL as printed: any user:password@ part removed."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _interval(env: Mapping[str, str]) -> float:
    try:
        value = float(env.get("SYNC_INTERVAL_S", "300"))
    except ValueError:
        return 300.0
    return value if value > 0 else 300.0


def handle(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    base = _base_url(args.url or _default_base(env))
    if base is None:
        fail("status: --url must be an http(s) URL")
        return 2
    if args.window < 0 or args.window > 60 or args.runs < 1 or args.runs > 1000 or args.timeout <= 0:
        fail("status: --window must be 0-60 s, --runs 1-1000, --timeout > 0")
        return 2
    token_env = args.token_env or DEFAULT_TOKEN_ENV
    token = (env.get(token_env) or "").strip() or None
    if args.token_env and token is None:
        fail(f"status: {token_env} is not set or empty")
        return 2
    shown = _display(base)
    try:
        first = _scrape(base, timeout=args.timeout)
        first_at = time.monotonic()
        second, window = None, 0.0
        if args.window > 0:
            time.sleep(args.window)
            second = _scrape(base, timeout=args.timeout)
            window = time.monotonic() - first_at  # measured: the rates divide by the real gap
    except FetchError as exc:
        fail(f"status: {shown}/metrics {exc}")
        return 1
    if "api" in (second or first).by(f"{_P}_actor_up", "actor"):
        runs = _fetch_runs(base, token=token, limit=args.runs, timeout=args.timeout, token_env=token_env)
    else:  # a syncer-only process: its port serves the ops routes only
        runs = RunsResult(unavailable="not served by this process (no API here); point --url at an API process")
    snapshot = Snapshot(
        url=shown,
        now=time.time(),
        first=first,
        second=second,
        window_s=window,
        runs=runs,
        sync_interval_s=_interval(env),
    )
    print(render(snapshot), end="")
    return 0
