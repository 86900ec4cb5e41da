"""The provider client against the simulator on loopback: pagination, retries, limits, secrets."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from daemon.config import load_settings
from daemon.errors import ConfigError, ProviderError
from daemon.observability.metrics import Metrics
from daemon.provider.client import Page, ProviderClient, open_provider_session, parse_retry_after
from daemon.provider.simulator import Fault, Simulator
from tests.config.test_settings import DEV, PROD
from tests.provider.conftest import LogCapture, provider_settings, sample
from tests.support.daemon_proc import free_port
from tests.support.simulator import running_simulator


def client(session: aiohttp.ClientSession, metrics: Metrics, url: str, **changes: Any) -> ProviderClient:
    return ProviderClient(session=session, settings=provider_settings(**changes), metrics=metrics, url=url)


async def collect(provider: ProviderClient) -> list[Page]:
    return [page async for page in provider.pages()]


def ids(pages: list[Page]) -> list[object]:
    return [record["id"] for page in pages for record in page.records]


async def test_pages_until_a_short_page(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """25 records at 10 a page: pages 1..3, the short third page ends the snapshot, every record once."""
    async with running_simulator(records=25, seed=4) as sim:
        pages = await collect(client(session, metrics, sim.url))
    assert [(p.number, len(p.records)) for p in pages] == [(1, 10), (2, 10), (3, 5)]
    assert ids(pages) == [str(i) for i in range(1, 26)]
    assert pages[0].records[0] == sim.record(1)
    assert [(r.page, r.limit) for r in sim.requests] == [(1, 10), (2, 10), (3, 10)]
    assert sample(metrics, "provider_requests_total", status_class="2xx") == 3
    assert sample(metrics, "provider_request_duration_seconds_count") == 3


async def test_exact_multiple_of_the_page_size_ends_on_an_empty_page(
    session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    """30 records at 10 a page: a 4th, empty page is asked for and ends the snapshot."""
    async with running_simulator(records=30) as sim:
        pages = await collect(client(session, metrics, sim.url))
    assert [(p.number, len(p.records)) for p in pages] == [(1, 10), (2, 10), (3, 10), (4, 0)]
    assert len(ids(pages)) == 30 and len(set(ids(pages))) == 30


async def test_no_records_is_one_empty_page(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """A provider with no records answers one empty page, and the snapshot is complete."""
    async with running_simulator(records=0) as sim:
        pages = await collect(client(session, metrics, sim.url))
    assert pages == [Page(1, [])]


async def test_page_size_zero_is_one_request_without_pagination(
    session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    """PROVIDER_PAGE_SIZE=0: a single request with no page/limit parameters returns everything."""
    async with running_simulator(records=2500) as sim:
        pages = await collect(client(session, metrics, sim.url, page_size=0, max_body_bytes=16 << 20))
    assert len(pages) == 1 and len(pages[0].records) == 2500
    assert [(r.page, r.limit) for r in sim.requests] == [(None, None)]


async def test_query_of_the_configured_url_is_kept(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """Parameters already in PROVIDER_URL stay; page and limit are set by the client."""
    async with running_simulator(records=5) as sim:
        pages = await collect(client(session, metrics, sim.url + "?sortBy=id&limit=999"))
    assert len(ids(pages)) == 5 and sim.requests[0].limit == 10


async def test_429_retry_after_seconds_is_honoured(
    session: aiohttp.ClientSession, metrics: Metrics, logs: LogCapture
) -> None:
    """A 429 with Retry-After: 1 waits one second (not the small backoff), then succeeds; retry counted."""
    async with running_simulator(records=5) as sim:
        sim.script(Fault(status=429, headers={"Retry-After": "1"}))
        started = time.monotonic()
        pages = await collect(client(session, metrics, sim.url, retry_max_wait_s=30))
        elapsed = time.monotonic() - started
    assert len(ids(pages)) == 5
    assert 0.9 <= elapsed < 10
    [retry] = logs.events("provider_request_retried")
    assert retry["reason"] == "status_429" and retry["wait_s"] == 1.0 and retry["page"] == 1
    assert sample(metrics, "provider_retries_total", reason="status_429") == 1
    assert sample(metrics, "provider_requests_total", status_class="4xx") == 1


async def test_429_retry_after_http_date_is_honoured(
    session: aiohttp.ClientSession, metrics: Metrics, logs: LogCapture
) -> None:
    """A Retry-After HTTP date two seconds ahead waits until then (1-2 s at the header's resolution)."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    async with running_simulator(records=5) as sim:
        sim.script(Fault(status=429, headers={"Retry-After": when}))
        pages = await collect(client(session, metrics, sim.url, retry_max_wait_s=30))
    assert len(ids(pages)) == 5
    [retry] = logs.events("provider_request_retried")
    assert 0.5 < retry["wait_s"] <= 2.0


async def test_retry_after_is_capped(session: aiohttp.ClientSession, metrics: Metrics, logs: LogCapture) -> None:
    """Retry-After longer than PROVIDER_RETRY_MAX_WAIT_S waits only the cap."""
    async with running_simulator(records=5) as sim:
        sim.script(Fault(status=503, headers={"Retry-After": "3600"}))
        started = time.monotonic()
        await collect(client(session, metrics, sim.url, retry_max_wait_s=0.2))
        assert time.monotonic() - started < 5
    [retry] = logs.events("provider_request_retried")
    assert retry["wait_s"] == 0.2 and retry["reason"] == "status_5xx"


async def test_5xx_and_408_are_retried_and_counted(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """500, 502 and 408 answers are retried with backoff until the page comes; each retry is counted."""
    async with running_simulator(records=15) as sim:
        sim.script(Fault(status=500), Fault(status=502), Fault(status=408))
        pages = await collect(client(session, metrics, sim.url))
    assert len(ids(pages)) == 15
    assert sample(metrics, "provider_retries_total", reason="status_5xx") == 2
    assert sample(metrics, "provider_retries_total", reason="status_408") == 1
    assert sample(metrics, "provider_requests_total", status_class="5xx") == 2
    assert sample(metrics, "provider_requests_total", status_class="2xx") == 2


async def test_timeouts_are_retried_and_counted(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """A page slower than PROVIDER_TIMEOUT_S is abandoned and retried (reason timeout, status class error)."""
    async with running_simulator(records=5) as sim:
        sim.script(Fault(delay_s=2.0, serve=True))
        pages = await collect(client(session, metrics, sim.url, timeout_s=0.3))
    assert len(ids(pages)) == 5
    assert sample(metrics, "provider_retries_total", reason="timeout") == 1
    assert sample(metrics, "provider_requests_total", status_class="error") == 1


async def test_exhausted_retries_raise_provider_error_after_earlier_pages(
    session: aiohttp.ClientSession, metrics: Metrics
) -> None:
    """A page that keeps failing ends the snapshot with ProviderError after max_retries+1 attempts."""
    async with running_simulator(records=35) as sim:
        sim.fail_page(2, Fault(status=503))
        seen: list[int] = []
        with pytest.raises(ProviderError, match=r"page 2 failed after 4 attempts: status 503") as err:
            async for page in client(session, metrics, sim.url, max_retries=3).pages():
                seen.append(page.number)
    assert seen == [1]
    assert [r.page for r in sim.requests] == [1, 2, 2, 2, 2]
    assert sim.url not in str(err.value) and "127.0.0.1" not in str(err.value)
    assert sample(metrics, "provider_retries_total", reason="status_5xx") == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301])
async def test_other_4xx_and_redirects_are_not_retried(
    session: aiohttp.ClientSession, metrics: Metrics, status: int
) -> None:
    """A 4xx other than 408/429 (or a redirect) fails at once: one request, no retry."""
    async with running_simulator(records=5) as sim:
        sim.script(Fault(status=status, headers={"Location": "http://127.0.0.1:1/elsewhere"}))
        with pytest.raises(ProviderError, match=f"status {status} for page 1; not retried"):
            await collect(client(session, metrics, sim.url))
    assert len(sim.requests) == 1
    assert sum(sample(metrics, "provider_retries_total", reason=r) for r in ("status_5xx", "connection")) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b'{"error": "x"}',
        b"[1, 2]",
        b'[{"id": "1"}, null]',
        b"",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
    ],
    ids=["html", "object", "scalars", "null-item", "empty", "not-utf8", "deep"],
)
async def test_a_garbage_page_is_retried_as_bad_body(
    session: aiohttp.ClientSession, metrics: Metrics, body: bytes
) -> None:
    """A 200 whose body is not a JSON array of objects is retried (reason bad_body), then the page is read."""
    async with running_simulator(records=5) as sim:
        sim.script(Fault(status=200, body=body))
        pages = await collect(client(session, metrics, sim.url))
    assert len(ids(pages)) == 5
    assert sample(metrics, "provider_retries_total", reason="bad_body") == 1


async def test_garbage_forever_is_a_provider_error(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """A page that is always garbage ends as ProviderError, never a crash."""
    async with running_simulator(records=5) as sim:
        sim.fail_page(1, Fault(status=200, body=b"not json"))
        with pytest.raises(ProviderError, match="not JSON"):
            await collect(client(session, metrics, sim.url, max_retries=2))
    assert sample(metrics, "provider_retries_total", reason="bad_body") == 2


async def test_body_over_the_limit_with_content_length(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """A page larger than PROVIDER_MAX_BODY_BYTES (announced by Content-Length) is refused and retried."""
    async with running_simulator(records=50) as sim:
        with pytest.raises(ProviderError, match="body over PROVIDER_MAX_BODY_BYTES=2048"):
            await collect(client(session, metrics, sim.url, max_body_bytes=2048, max_retries=1))
    assert sample(metrics, "provider_retries_total", reason="too_large") == 1


async def test_streamed_body_over_the_limit_is_cut(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """A chunked body (no Content-Length) is read only up to the limit, then refused."""
    async with running_simulator(records=5000) as sim:
        with pytest.raises(ProviderError, match="body over"):
            await collect(client(session, metrics, sim.url, page_size=0, max_body_bytes=64 * 1024, max_retries=0))
    assert sample(metrics, "provider_requests_total", status_class="2xx") == 1


async def test_max_pages_guard(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """With PROVIDER_MAX_PAGES=2 and more full pages, the client stops after page 2 with ProviderError."""
    async with running_simulator(records=50) as sim:
        seen: list[int] = []
        with pytest.raises(ProviderError, match="PROVIDER_MAX_PAGES=2"):
            async for page in client(session, metrics, sim.url, max_pages=2).pages():
                seen.append(page.number)
    assert seen == [1, 2] and len(sim.requests) == 2


async def test_a_provider_ignoring_the_limit_is_refused(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """A page with more records than the limit means pagination is ignored: ProviderError, no endless loop."""
    async with running_simulator(records=5) as sim:
        body = json.dumps([sim.record(i) for i in range(1, 13)]).encode()
        sim.fail_page(1, Fault(status=200, body=body))
        with pytest.raises(ProviderError, match="ignores pagination"):
            await collect(client(session, metrics, sim.url))
    assert len(sim.requests) == 1


async def test_connection_refused_is_retried_then_fails(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """Nothing listening: each attempt is a connection error, counted, then ProviderError."""
    url = f"http://127.0.0.1:{free_port()}/api/v1/usuarios"
    with pytest.raises(ProviderError, match=r"failed after 3 attempts: connection failed"):
        await collect(client(session, metrics, url, max_retries=2))
    assert sample(metrics, "provider_retries_total", reason="connection") == 2
    assert sample(metrics, "provider_requests_total", status_class="error") == 3


async def test_auth_header_is_sent_and_never_logged(
    session: aiohttp.ClientSession, metrics: Metrics, logs: LogCapture
) -> None:
    """PROVIDER_AUTH_HEADER reaches the provider on every request and appears in no log line, nor the URL."""
    secret = "Bearer s3cr3t-provider-token-0123456789"
    async with running_simulator(records=15) as sim:
        sim.script(Fault(status=503), Fault(status=429, headers={"Retry-After": "0"}))
        await collect(client(session, metrics, sim.url, auth_header=secret))
        sim.fail_page(1, Fault(status=401))
        with pytest.raises(ProviderError) as err:
            await collect(client(session, metrics, sim.url, auth_header=secret))
    assert [r.authorization for r in sim.requests] == [secret] * 5
    assert len(logs.events("provider_request_retried")) == 2
    assert "s3cr3t" not in logs.text and "s3cr3t" not in str(err.value)
    client_lines = [line for line in logs.text.splitlines() if '"customers_mngr.provider"' in line]
    assert client_lines and not [line for line in client_lines if "127.0.0.1" in line]
    assert "127.0.0.1" not in str(err.value)


async def test_a_client_without_url_is_refused(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """No PROVIDER_URL and no override: a clear ProviderError at construction."""
    with pytest.raises(ProviderError, match="no provider URL"):
        ProviderClient(session=session, settings=provider_settings(url=None), metrics=metrics)


async def test_session_has_explicit_timeouts_and_ignores_the_environment() -> None:
    """The shared session carries the configured timeouts and does not read proxies or .netrc from the env."""
    settings = provider_settings(timeout_s=7.0, tls_verify=False)
    async with open_provider_session(settings) as s:
        assert s.timeout.total == 7.0 and s.timeout.sock_connect == 7.0
        assert s.trust_env is False
    assert s.closed


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 2 ", 2.0),
        ("0.5", 0.5),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        ("soon", None),
        ("-1", None),
        ("1" * 100, None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    """Retry-After is read as delay-seconds or an HTTP date; anything else is ignored."""
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected


async def test_fault_rates_are_retried_to_a_complete_snapshot(session: aiohttp.ClientSession, metrics: Metrics) -> None:
    """Under 20% errors and 10% throttling the client still reads every record exactly once."""
    sim = Simulator(records=300, seed=9, error_rate=0.2, throttle_rate=0.1, retry_after="0")
    async with running_simulator(sim) as served:
        pages = await collect(client(session, metrics, served.url, max_retries=10))
    assert ids(pages) == [str(i) for i in range(1, 301)]
    assert sample(metrics, "provider_retries_total", reason="status_5xx") > 0
    assert sample(metrics, "provider_retries_total", reason="status_429") > 0


def test_production_requires_an_https_provider() -> None:
    """In production PROVIDER_URL must be https (TLS verification is always on there); development may use http."""
    with pytest.raises(ConfigError, match="PROVIDER_URL: is not https in production"):
        load_settings({**PROD, "PROVIDER_URL": "http://provider.example/api/v1/usuarios"})
    assert load_settings(PROD).provider.url == PROD["PROVIDER_URL"]
    assert load_settings({**DEV, "PROVIDER_URL": "http://127.0.0.1:1/x"}).provider.url == "http://127.0.0.1:1/x"
