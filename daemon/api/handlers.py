"""The customer-data handlers: authorize, parse, read (from memory when allowed), respond.

Viewer and analyst answers decrypt nothing, so they are served from the page
cache while the data version is unchanged, with a strong ETag and 304 for
`If-None-Match`. Admin answers decrypt exactly the fields the admin
projection returns, are never cached, and are sent with `Cache-Control: no-store`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Final

import orjson
from aiohttp import web

from daemon.api.auth import AuthFailure, TokenStore
from daemon.api.cache import CachedPage, PageCache, SingleFlight, VersionTracker
from daemon.api.context import state_of
from daemon.api.cursor import Cursor, CursorCodec
from daemon.api.params import (
    ITEM_PARAMS,
    RUNS_DEFAULT_LIMIT,
    RUNS_MAX_LIMIT,
    RUNS_PARAMS,
    PageQuery,
    check_known,
    parse_bool,
    parse_id,
    parse_limit,
    parse_page_query,
)
from daemon.api.problems import ApiProblem
from daemon.api.queries import (
    PROJECTIONS,
    Decryptor,
    Page,
    Projection,
    RowDecrypting,
    fetch_item,
    fetch_page,
    fetch_range,
    fetch_sync_runs,
)
from daemon.config.http import Role
from daemon.db.database import Database
from daemon.observability.metrics import Metrics
from daemon.policy import CUSTOMERS_TABLE, revealed_classes

__all__ = ("CustomersApi",)

JSON_TYPE: Final = "application/json"
_NO_STORE: Final = "no-store"
# Shared caches must not keep a role's answer for another caller; every use revalidates.
_REVALIDATE: Final = "private, no-cache"
_VARY: Final = "Authorization"
_WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="customers-mngr"'}
_REVEALED: Final = {role: revealed_classes(role) for role in PROJECTIONS}
# An item is cached with its neighbours: ids [n*ITEM_BLOCK, (n+1)*ITEM_BLOCK) are read in one range scan,
# as long as the cache has free room for them (see _load_item_block).
ITEM_BLOCK: Final = 256
_ITEM_ESTIMATE_BYTES: Final = 512  # a viewer/analyst item entry, body and bookkeeping (for the room check)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, byte for byte what json.dumps(separators=(",", ":"), ensure_ascii=False) gives
    for these bodies (str keys; str, int, bool, None and list values), about 15x faster on an admin page."""
    return orjson.dumps(value)


class CustomersApi:
    """The handlers and what they share: pool, keyring, tokens, cursor codec, version and cache."""

    def __init__(
        self,
        *,
        db: Database,
        decryptor: Decryptor,
        tokens: TokenStore,
        codec: CursorCodec,
        etag_key: bytes,
        tracker: VersionTracker,
        cache: PageCache,
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._decryptor = decryptor
        self._tokens = tokens
        self._codec = codec
        self._etag_key = etag_key
        self._tracker = tracker
        self._cache = cache
        self._metrics = metrics
        self._flights: SingleFlight[Hashable, CachedPage | None] = SingleFlight()
        self._blocks: SingleFlight[Hashable, dict[int, CachedPage]] = SingleFlight()
        # Built once: the AAD constants of each decrypting projection's columns (nothing decrypted is kept).
        self._row_decryptors: dict[Role, RowDecrypting] = {
            role: decryptor.row_decryptor(p.encrypted_columns, table=CUSTOMERS_TABLE)
            for role, p in PROJECTIONS.items()
            if p.decrypts
        }

    @property
    def cache(self) -> PageCache:
        return self._cache

    @property
    def tracker(self) -> VersionTracker:
        return self._tracker

    # ---- authorization -------------------------------------------------------------------------

    def authorize(self, request: web.Request, roles: Sequence[Role]) -> Role:
        """The caller's role, or a 401 (no or unknown token) / 403 (role not allowed) problem."""
        result = self._tokens.authenticate(request.headers.get("Authorization"))
        if isinstance(result, AuthFailure):
            self._metrics.api_auth_failures.labels(reason=result.reason).inc()
            raise ApiProblem(
                "unauthorized", "send a valid API token: Authorization: Bearer <token>", headers=_WWW_AUTHENTICATE
            )
        state = state_of(request)
        state.token_name = result.name
        if state.audit is not None:
            state.audit.token_name, state.audit.role = result.name, result.role
        if result.role not in roles:
            self.forbid(f"the {result.role} role may not use this endpoint")
        return result.role

    def forbid(self, detail: str) -> None:
        self._metrics.api_auth_failures.labels(reason="forbidden").inc()
        raise ApiProblem("forbidden", detail)

    # ---- GET /clientes -----------------------------------------------------------------------------

    async def list_customers(self, request: web.Request) -> web.Response:
        role = self.authorize(request, ("viewer", "analyst", "admin"))
        query = parse_page_query(request.query, self._codec)
        record = state_of(request).audit
        if record is not None:
            record.filters = _filters(query)
        if role != "admin" and query.include_deleted:
            self.forbid("only admins may list soft-deleted customers")
        if role != "admin" and (query.card_number or query.card_bidx):
            self.forbid("only admins may search by card number")
        projection = PROJECTIONS[role]
        if projection.decrypts:
            return await self._admin_page(request, projection, query)
        key = ("page", role, query.after_id, query.limit)
        page = await self._cached(key, lambda: self._load_page(projection, query))
        if page is None:  # only an item can be absent
            raise RuntimeError("a page load returned nothing")
        return self._cached_response(request, role, page)

    async def _load_page(self, projection: Projection, query: PageQuery) -> tuple[int | None, CachedPage | None]:
        page = await self._read_page(projection, query, None)
        body = dumps(page.records)
        link = self._next_link(page, query)
        return page.version, CachedPage(body=body, etag=self._etag(body, link), link=link, ids=tuple(page.ids))

    async def _admin_page(self, request: web.Request, projection: Projection, query: PageQuery) -> web.Response:
        bidx = query.card_bidx
        if query.card_number is not None:
            given = self._decryptor.blind_index(query.card_number)
            if bidx is not None and not hmac.compare_digest(given, bidx):
                raise ApiProblem.invalid_param("card_number", "the same as on the page the cursor came from")
            bidx = given
        query = PageQuery(query.limit, query.after_id, query.include_deleted, None, bidx)
        page = await self._read_page(projection, query, self._row_decryptors[projection.role])
        self._audit_records(request, "admin", page.ids)
        headers = {"Cache-Control": _NO_STORE, "Vary": _VARY}
        link = self._next_link(page, query)
        if link:
            headers["Link"] = link
        return web.Response(body=dumps(page.records), content_type=JSON_TYPE, headers=headers)

    async def _read_page(self, projection: Projection, query: PageQuery, decryptor: RowDecrypting | None) -> Page:
        page = await fetch_page(
            self._db,
            projection,
            after_id=query.after_id,
            limit=query.limit,
            include_deleted=query.include_deleted,
            card_bidx=query.card_bidx,
            decryptor=decryptor,
        )
        self._tracker.observe(page.version)
        return page

    def _next_link(self, page: Page, query: PageQuery) -> str | None:
        if not page.more:
            return None
        cursor = self._codec.encode(Cursor(page.ids[-1], query.include_deleted, query.card_bidx))
        return f'</clientes?limit={query.limit}&cursor={cursor}>; rel="next"'

    # ---- GET /clientes/{id} ------------------------------------------------------------------------

    async def get_customer(self, request: web.Request) -> web.Response:
        role = self.authorize(request, ("viewer", "analyst", "admin"))
        record_id = parse_id(request.match_info["id"])
        check_known(request.query, ITEM_PARAMS)
        include_deleted = bool(parse_bool(request.query, "include_deleted"))
        if include_deleted and role != "admin":
            self.forbid("only admins may read soft-deleted customers")
        projection = PROJECTIONS[role]
        if projection.decrypts:
            item = await fetch_item(
                self._db,
                projection,
                record_id=record_id,
                include_deleted=include_deleted,
                decryptor=self._row_decryptors[role],
            )
            self._tracker.observe(item.version)
            if not item.records:
                raise ApiProblem("not-found", "no customer with this id")
            self._audit_records(request, role, item.ids)
            headers = {"Cache-Control": _NO_STORE, "Vary": _VARY}
            return web.Response(body=dumps(item.records[0]), content_type=JSON_TYPE, headers=headers)
        page = await self._cached_item(role, projection, record_id)
        if page is None:
            raise ApiProblem("not-found", "no customer with this id")
        return self._cached_response(request, role, page)

    async def _cached_item(self, role: Role, projection: Projection, record_id: int) -> CachedPage | None:
        """A viewer/analyst item from the cache, else read with its neighbours while the cache has room.

        Random reads over a large table would otherwise mostly miss: one range scan
        of ITEM_BLOCK ids costs about what a few single-row reads do and fills the
        cache for every id of the block. Neighbours are read only into free room
        (they never evict anything); when the cache is full, the one item is read,
        as a plain miss always was. Absence is never cached.
        """
        version = await self._tracker.current()
        key = ("item", role, record_id)
        page = self._cache.get(version, key)
        if page is not None:
            return page
        if not self._cache.has_room(ITEM_BLOCK, ITEM_BLOCK * _ITEM_ESTIMATE_BYTES):
            return await self._flights.run((version, key), lambda: self._load_item(projection, record_id, key))
        block = record_id // ITEM_BLOCK
        loaded = await self._blocks.run((version, role, block), lambda: self._load_item_block(projection, block))
        return loaded.get(record_id)

    async def _load_item(self, projection: Projection, record_id: int, key: Hashable) -> CachedPage | None:
        item = await fetch_item(self._db, projection, record_id=record_id, include_deleted=False, decryptor=None)
        self._tracker.observe(item.version)
        if not item.records:
            return None  # absence is not cached: the next sync may add it
        body = dumps(item.records[0])
        page = CachedPage(body=body, etag=self._etag(body, None), link=None, ids=tuple(item.ids))
        self._cache.put(item.version, key, page)
        return page

    async def _load_item_block(self, projection: Projection, block: int) -> dict[int, CachedPage]:
        low = block * ITEM_BLOCK
        items = await fetch_range(self._db, projection, low=low, high=low + ITEM_BLOCK)
        self._tracker.observe(items.version)
        pages: dict[int, CachedPage] = {}
        for record_id, record in zip(items.ids, items.records, strict=True):
            body = dumps(record)
            page = pages[record_id] = CachedPage(body=body, etag=self._etag(body, None), link=None, ids=(record_id,))
            self._cache.put(items.version, ("item", projection.role, record_id), page)
        return pages

    # ---- GET /sync/runs ----------------------------------------------------------------------------

    async def sync_runs(self, request: web.Request) -> web.Response:
        self.authorize(request, ("admin",))
        check_known(request.query, RUNS_PARAMS)
        limit = parse_limit(request.query, default=RUNS_DEFAULT_LIMIT, high=RUNS_MAX_LIMIT)
        runs = await fetch_sync_runs(self._db, limit=limit)
        return web.Response(body=dumps(runs), content_type=JSON_TYPE, headers={"Cache-Control": _NO_STORE})

    # ---- the cache ---------------------------------------------------------------------------------

    async def _cached(
        self, key: Hashable, load: Callable[[], Awaitable[tuple[int | None, CachedPage | None]]]
    ) -> CachedPage | None:
        version = await self._tracker.current()
        page = self._cache.get(version, key)
        if page is not None:
            return page

        async def load_and_store() -> CachedPage | None:
            read_version, fresh = await load()
            if fresh is not None:
                self._cache.put(read_version, key, fresh)
            return fresh

        return await self._flights.run((version, key), load_and_store)

    def _cached_response(self, request: web.Request, role: Role, page: CachedPage) -> web.Response:
        self._audit_records(request, role, page.ids)
        headers = {"ETag": page.etag, "Cache-Control": _REVALIDATE, "Vary": _VARY}
        if page.link:
            headers["Link"] = page.link
        if _matches(request, page.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=page.body, content_type=JSON_TYPE, headers=headers)

    def _etag(self, body: bytes, link: str | None) -> str:
        # Keyed, so an ETag cannot be used to test guesses of the (low-entropy) values behind it.
        digest = hashlib.blake2b(body, digest_size=18, key=self._etag_key)
        digest.update(b"\x00" + (link or "").encode())
        return '"' + base64.urlsafe_b64encode(digest.digest()).decode("ascii") + '"'

    def _audit_records(self, request: web.Request, role: Role, ids: Sequence[int]) -> None:
        record = state_of(request).audit
        if record is not None:
            record.ids = ids
            record.revealed = _REVEALED[role]


def _matches(request: web.Request, etag: str) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    opaque = etag[1:-1]
    try:
        tags = request.if_none_match or ()
    except ValueError:
        return False
    return any(tag.value in (opaque, "*") for tag in tags)


def _filters(query: PageQuery) -> list[str]:
    filters = []
    if query.include_deleted:
        filters.append("include_deleted")
    if query.card_number or query.card_bidx:
        filters.append("card_number")
    return filters
