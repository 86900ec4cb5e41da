"""Serving viewer and analyst pages from memory while the data has not changed.

The syncer bumps `data_version` in the same transaction as every write to
`customers`. `VersionTracker` keeps the latest version it has seen, re-reading
the row at most once per `ttl_s` (one SELECT shared by every request that
needs it), so a change is served at most `ttl_s` late. `PageCache` holds
finished response bodies keyed by (version, role, what was asked); entries of
older versions are dropped the moment a newer version is seen, and the whole
cache is bounded in entries and bytes (least recently used out first).

Only projections that decrypt nothing are ever cached: an admin's decrypted
values are never kept beyond the request that asked for them.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from daemon.db.database import Database

__all__ = ("CachedPage", "PageCache", "SingleFlight", "VersionTracker")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

SELECT_VERSION: Final = "SELECT version FROM data_version WHERE name = 'customers'"
_ENTRY_OVERHEAD: Final = 256  # bytes per entry beyond its body: key, object headers, dict slot


class SingleFlight(Generic[K, T]):
    """Concurrent callers asking for the same key share one load instead of each running it."""

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Future[T]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[T]]) -> T:
        while (flight := self._flights.get(key)) is not None:
            try:
                return await asyncio.shield(flight)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not flight.cancelled() or (task is not None and task.cancelling()):
                    raise
                # the leader was cancelled (its client went away): load ourselves instead
        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        try:
            value = await load()
        except Exception as exc:
            flight.set_exception(exc)
            flight.exception()  # mark retrieved: nobody may be waiting
            raise
        except BaseException:
            flight.cancel()
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            del self._flights[key]


class VersionTracker:
    """The latest `data_version` of the customers table, re-read at most every `ttl_s`."""

    __slots__ = ("_checked_at", "_db", "_flight", "_ttl_s", "_value")

    def __init__(self, db: Database, *, ttl_s: float) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._value: int | None = None
        self._checked_at = float("-inf")
        self._flight: SingleFlight[str, int | None] = SingleFlight()

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    async def current(self) -> int | None:
        """The version to serve at; raises DatabaseUnavailable when it cannot be checked."""
        if time.monotonic() - self._checked_at < self._ttl_s:
            return self._value
        return await self._flight.run("version", self._read)

    def observe(self, version: int | None) -> None:
        """A version seen in a page's own snapshot: never go backwards (replicas may lag)."""
        if version is not None and (self._value is None or version > self._value):
            self._value = version

    async def _read(self) -> int | None:
        value = await self._db.fetch_value(SELECT_VERSION)
        self._checked_at = time.monotonic()
        self.observe(None if value is None else int(value))
        return self._value


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A finished response: its body, strong ETag, next-page link and the ids it holds (for audit)."""

    body: bytes
    etag: str
    link: str | None
    ids: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.body) + len(self.link or "") + 8 * len(self.ids) + _ENTRY_OVERHEAD


class PageCache:
    """Bodies of the current data version only, least recently used out first."""

    __slots__ = ("_bytes", "_entries", "_max_bytes", "_max_entries", "_version", "hits", "misses")

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self._entries: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._version: int | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def version(self) -> int | None:
        return self._version

    def has_room(self, entries: int, size: int) -> bool:
        """Whether `entries` more entries totalling `size` bytes fit without evicting anything."""
        return len(self._entries) + entries <= self._max_entries and self._bytes + size <= self._max_bytes

    def get(self, version: int | None, key: Hashable) -> CachedPage | None:
        if version is None or version != self._version:
            self.misses += 1
            return None
        page = self._entries.get(key)
        if page is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return page

    def put(self, version: int | None, key: Hashable, page: CachedPage) -> None:
        if version is None or page.size > self._max_bytes:
            return
        if self._version is None or version > self._version:
            self.clear()
            self._version = version
        elif version < self._version:
            return  # read from an older snapshot: nobody will ask for it again
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = page
        self._bytes += page.size
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
