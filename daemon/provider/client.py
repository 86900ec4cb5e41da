"""The provider's HTTP client: a snapshot as a stream of pages, with retries at this edge only.

    pages()  page=1,2,... (?page=N&limit=M, 1-based, mockapi.io style)
      ends  after a short page or an empty one (or the single request when PROVIDER_PAGE_SIZE=0):
            only then is the snapshot complete
      raises ProviderError  after a page's retries are exhausted, on a status that retrying
            cannot fix (3xx, 4xx other than 408/429), when PROVIDER_MAX_PAGES is reached, or
            when the provider ignores the limit

One request = one attempt: connection errors, timeouts, 5xx, 408, 429, a body
that is not a JSON array of objects and a body over PROVIDER_MAX_BODY_BYTES are
retried with exponential backoff and full jitter, or after `Retry-After` (seconds
or an HTTP date) when the provider sends it, each wait capped by
PROVIDER_RETRY_MAX_WAIT_S. The body is read in chunks and abandoned as soon as
it passes the limit, so a hostile provider cannot make us buffer more. Pages are
yielded one at a time: memory is bounded by the page, never by the snapshot.

Nothing here logs the URL (it may carry a token in its query) or the
Authorization header (PROVIDER_AUTH_HEADER is a secret): log lines name the page,
the attempt, the reason and the wait.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from yarl import URL

from daemon import __version__
from daemon.config.sync import ProviderSettings
from daemon.errors import ProviderError
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics

__all__ = ("BACKOFF_INITIAL_S", "Page", "PageStream", "ProviderClient", "open_provider_session", "parse_retry_after")

log = get_logger("customers_mngr.provider")

BACKOFF_INITIAL_S: Final = 0.5  # first backoff ceiling; doubles per attempt, capped by PROVIDER_RETRY_MAX_WAIT_S
_CHUNK: Final = 64 * 1024
# aiohttp's defaults, stated: a longer status or header line from the provider is an error.
MAX_LINE_SIZE: Final = 8190
MAX_FIELD_SIZE: Final = 8190
_SECONDS = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,6})?")
_STATUS_CLASSES: Final = {2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


@dataclass(frozen=True, slots=True)
class Page:
    """One page of the snapshot: its 1-based number and its records, as the provider sent them."""

    number: int
    records: list[dict[str, object]]


class PageStream:
    """A snapshot as an async iterator of pages (like `ProviderClient.pages()`), with numbered access.

    A reader may instead fetch pages by number, several at once (`page`, `page_size`,
    `max_pages`, `too_many_pages`), taking them in order: the snapshot ends after the first
    page shorter than `page_size`; pages fetched beyond it are dropped. `page_size` 0 means
    a single request: iterate instead.
    """

    def __init__(self, client: ProviderClient) -> None:
        self._client = client
        self._pages = client.pages()
        self.page_size = client.page_size
        self.max_pages = client.max_pages

    def __aiter__(self) -> PageStream:
        return self

    async def __anext__(self) -> Page:
        return await anext(self._pages)

    async def aclose(self) -> None:
        await self._pages.aclose()

    async def page(self, number: int) -> Page:
        return await self._client.page(number)

    def too_many_pages(self) -> ProviderError:
        return self._client.too_many_pages()


class _Retryable(Exception):
    """One failed attempt that another attempt may fix. `reason` is a RETRY_REASONS label."""

    def __init__(self, reason: str, detail: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s


@asynccontextmanager
async def open_provider_session(settings: ProviderSettings) -> AsyncIterator[aiohttp.ClientSession]:
    """The one reused session: explicit timeouts, TLS verification per settings, bounded headers.

    `trust_env=False`: no proxy or .netrc credentials picked up from the environment.
    """
    connector = aiohttp.TCPConnector(limit=4, ssl=settings.tls_verify, ttl_dns_cache=300)
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=_timeout(settings),
        headers={"User-Agent": f"customers-mngr/{__version__}", "Accept": "application/json"},
        trust_env=False,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
    )
    try:
        yield session
    finally:
        await session.close()


class ProviderClient:
    """Reads the provider's snapshot page by page through a shared session."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        settings: ProviderSettings,
        metrics: Metrics,
        url: str | None = None,
    ) -> None:
        target = url if url is not None else settings.url
        if target is None:
            raise ProviderError("no provider URL: set PROVIDER_URL (or run the development simulator)")
        self._url = URL(target)
        self._session = session
        self._settings = settings
        self._metrics = metrics
        self._timeout = _timeout(settings)
        self._headers = {"Accept": "application/json"}
        if settings.auth_header:
            self._headers["Authorization"] = settings.auth_header

    async def pages(self) -> AsyncGenerator[Page, None]:
        """The snapshot's pages in order; returns normally only once the snapshot is complete."""
        size = self._settings.page_size
        if size == 0:
            yield Page(1, await self._fetch(1, self._url))
            return
        number = 1
        while True:
            if number > self._settings.max_pages:
                raise self.too_many_pages()
            page = await self.page(number)
            yield page
            if len(page.records) < size:  # short or empty: the last page
                return
            number += 1

    def stream(self) -> PageStream:
        """The same pages as `pages()`, plus numbered access for a reader that fetches ahead."""
        return PageStream(self)

    @property
    def page_size(self) -> int:
        return self._settings.page_size

    @property
    def max_pages(self) -> int:
        return self._settings.max_pages

    async def page(self, number: int) -> Page:
        """Page `number` (1-based) of a paginated snapshot, with its retries; ProviderError if it fails.

        A page longer than the limit is an error: the provider ignores pagination.
        """
        size = self._settings.page_size
        records = await self._fetch(number, self._url.update_query(page=number, limit=size))
        if len(records) > size:
            raise ProviderError(
                f"provider page {number} had {len(records)} records for limit {size}: it ignores "
                "pagination (set PROVIDER_PAGE_SIZE=0 for a single request)"
            )
        return Page(number, records)

    def too_many_pages(self) -> ProviderError:
        return ProviderError(
            f"provider sent more than PROVIDER_MAX_PAGES={self._settings.max_pages} full pages; "
            "snapshot abandoned as incomplete"
        )

    # --- one page, with retries -------------------------------------------------------------

    async def _fetch(self, number: int, url: URL) -> list[dict[str, object]]:
        attempts = self._settings.max_retries + 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=lambda state: self._before_sleep(number, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(number, url)
        except _Retryable as exc:
            raise ProviderError(f"provider page {number} failed after {attempts} attempts: {exc.detail}") from None
        raise AssertionError("unreachable: tenacity either returns or reraises")

    def _wait(self, state: RetryCallState) -> float:
        cap = self._settings.retry_max_wait_s
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, cap)
        ceiling = min(cap, BACKOFF_INITIAL_S * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # full jitter: replicas that failed together spread out

    def _before_sleep(self, number: int, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        reason = exc.reason if isinstance(exc, _Retryable) else "connection"
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        self._metrics.provider_retries.labels(reason=reason).inc()
        log.warning(
            "provider_request_retried",
            page=number,
            attempt=state.attempt_number,
            reason=reason,
            detail=exc.detail if isinstance(exc, _Retryable) else None,
            wait_s=round(wait, 3),
        )

    async def _attempt(self, number: int, url: URL) -> list[dict[str, object]]:
        started = time.perf_counter()
        status_class = "error"
        try:
            async with self._session.get(
                url, headers=self._headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                status_class = _STATUS_CLASSES.get(response.status // 100, "error")
                _check_status(number, response)
                body = await self._read_body(response)
        except TimeoutError:  # aiohttp's connect/read timeouts are TimeoutError subclasses
            raise _Retryable("timeout", f"no complete answer within {self._settings.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise _Retryable("connection", f"connection failed ({type(exc).__name__})") from None
        finally:
            self._metrics.provider_requests.labels(status_class=status_class).inc()
            self._metrics.provider_request_duration.observe(time.perf_counter() - started)
        records = _decode(body)
        log.debug("provider_page_fetched", page=number, records=len(records), bytes=len(body))
        return records

    async def _read_body(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self._settings.max_body_bytes
        too_large = _Retryable("too_large", f"body over PROVIDER_MAX_BODY_BYTES={limit}")
        if response.content_length is not None and response.content_length > limit:
            raise too_large
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):  # decompressed bytes: a zip bomb stops here too
            body += chunk
            if len(body) > limit:
                raise too_large
        return bytes(body)


def _check_status(number: int, response: aiohttp.ClientResponse) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        reason = f"status_{status}" if status in (408, 429) else "status_5xx"
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise _Retryable(reason, f"status {status}", retry_after_s=retry_after)
    raise ProviderError(f"provider answered status {status} for page {number}; not retried")


def _decode(body: bytes) -> list[dict[str, object]]:
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8/16/32, or nested past the parser's depth
        raise _Retryable("bad_body", "body is not JSON") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise _Retryable("bad_body", "body is not a JSON array of objects")
    return data


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date; None if unusable."""
    if value is None or len(value) > 64:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _timeout(settings: ProviderSettings) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=settings.timeout_s, sock_connect=settings.timeout_s)
