"""A hostile provider: each path answers GET ?page=N&limit=M with one kind of bad input.

    with hostile_provider(needles) as server:
        env["PROVIDER_URL"] = server.url("deep_nesting")

Cases (see CASES for what each must lead to): a huge page, bodies over the size limit
(streamed or declared), deep nesting, non-UTF-8 bytes, lone surrogates, nulls as records
and nulls in every field, numbers as strings and strings as numbers, 10 MB fields, duplicate
ids within and across pages, a body cut in the middle (declared length or chunked), HTML
with status 200, pagination that never ends, a body trickled past the timeout, a page
larger than the limit. `/cycle/usuarios` serves the single-request cases one after the other,
a new one per snapshot, for a long-running daemon. Every record it serves goes into
`needles` (scenario 9 searches for them). Loopback only, its own loop in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from aiohttp import web

from tests.reliability.harness import Needles, RecordingSimulator

__all__ = ("CASES", "CYCLE", "Case", "HostileProvider", "hostile_provider")

MB = 1024 * 1024
HUGE_PAGE_RECORDS = 12_000
BIG_FIELD = 10 * MB
CARD_MARK = "9999888877776666"  # the start of the 10 MB card number: what a leak would show


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    outcome: str  # "failed" (a clear run failure), "stored" (ok or partial, rows checked)
    error: str = ""  # a substring of the failed run's error
    env: tuple[tuple[str, str], ...] = ()
    rows: int | None = None  # live rows after the run (stored cases)
    quarantined: int | None = None
    duplicates: int | None = None


CASES: tuple[Case, ...] = (
    Case("huge_page", f"one page of {HUGE_PAGE_RECORDS} records (~7 MB)", "stored", rows=HUGE_PAGE_RECORDS,
         env=(("PROVIDER_PAGE_SIZE", "0"),), quarantined=0),
    Case("over_limit_streamed", "a 64 MB chunked body (limit 16 MiB)", "failed", "PROVIDER_MAX_BODY_BYTES"),
    Case("over_limit_declared", "Content-Length of 64 MB", "failed", "PROVIDER_MAX_BODY_BYTES"),
    Case("deep_nesting", "100000 nested arrays in one field", "failed", "not JSON"),
    Case("nested_fields", "fields holding nested arrays (depth 500) and objects of 10000 keys", "stored", rows=18,
         quarantined=2, env=(("PROVIDER_PAGE_SIZE", "0"),)),
    Case("non_utf8", "raw 0xFF 0xFE bytes inside strings", "failed", "not JSON"),
    Case("lone_surrogates", "\\ud800 escapes in text and card fields", "stored", rows=2, quarantined=2),
    Case("null_records", "null and numbers as records", "failed", "array of objects"),
    Case("null_fields", "every field null (with and without an id)", "stored", rows=2, quarantined=1),
    Case("numbers_as_strings", "ids, counts, zip, card and account as numbers or numeric strings", "stored", rows=3,
         quarantined=0),
    Case("ten_mb_fields", "three records with a 10 MB user name, card number and DNI URL", "stored", rows=1,
         quarantined=3, env=(("PROVIDER_MAX_BODY_BYTES", str(48 * MB)),)),
    Case("duplicate_ids", "the same ids twice in a page and across pages", "stored", rows=4, quarantined=0,
         duplicates=2, env=(("PROVIDER_PAGE_SIZE", "4"),)),
    Case("cut_declared", "Content-Length 200000, connection closed after 100000 bytes", "failed", "connection"),
    Case("cut_chunked", "chunked body cut in the middle of a record", "failed", "connection"),
    Case("html_200", "an HTML error page with status 200", "failed", "not JSON"),
    Case("endless", "full pages forever", "failed", "PROVIDER_MAX_PAGES", env=(("PROVIDER_MAX_PAGES", "5"),)),
    Case("slow_trickle", "one byte every 0.5 s", "failed", "no complete answer", env=(("PROVIDER_TIMEOUT_S", "2"),)),
    Case("over_page_size", "more records than the limit asked for", "failed", "ignores pagination"),
)  # fmt: skip
CYCLE: tuple[str, ...] = (
    "huge_page", "over_limit_streamed", "deep_nesting", "non_utf8", "lone_surrogates", "null_records",
    "null_fields", "numbers_as_strings", "ten_mb_fields", "html_200", "cut_declared", "cut_chunked",
)  # fmt: skip


class HostileProvider:
    def __init__(self, needles: Needles) -> None:
        self.needles = needles
        self._gen = RecordingSimulator(needles, records=HUGE_PAGE_RECORDS + 100, seed=808)
        self._bodies: dict[str, bytes] = {}
        self.requests: dict[str, int] = {}
        self.cycle_served: list[str] = []
        self._cycle_at = -1
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-provider", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, case: str) -> str:
        return f"http://127.0.0.1:{self.port}/{case}/usuarios"

    def record(self, n: int, **changes: object) -> dict[str, object]:
        raw = self._gen.record(n)
        raw.update(changes)
        self.needles.add_record(raw)
        return raw

    # --- bodies ------------------------------------------------------------------------------

    def _body(self, name: str, build: Callable[[], bytes]) -> bytes:
        if name not in self._bodies:
            self._bodies[name] = build()
        return self._bodies[name]

    def huge_page(self) -> bytes:
        return self._body(
            "huge", lambda: json.dumps([self.record(n) for n in range(1, HUGE_PAGE_RECORDS + 1)]).encode()
        )

    def nested_fields(self) -> bytes:
        def build() -> bytes:
            records: list[dict[str, object]] = [self.record(n) for n in range(1, 19)]
            deep: object = "x"
            for _ in range(500):
                deep = [deep]
            records.append(self.record(19, direccion=deep))
            records.append(self.record(20, auto={f"k{i}": i for i in range(10_000)}))
            return json.dumps(records).encode()

        return self._body("nested", build)

    def ten_mb_fields(self) -> bytes:
        def build() -> bytes:
            records = [
                self.record(1),
                self.record(2, user_name="u" * BIG_FIELD),
                self.record(3, credit_card_num=CARD_MARK + "5" * BIG_FIELD),
                self.record(4, foto_dni="https://dni.hostile.test/" + "a" * BIG_FIELD),
            ]
            self.needles.cards.add(CARD_MARK)
            return json.dumps(records).encode()

        return self._body("ten_mb", build)

    def single_body(self, case: str) -> web.StreamResponse | bytes | None:
        """The whole answer of a single-request case (None: the case streams)."""
        if case == "huge_page":
            return self.huge_page()
        if case == "deep_nesting":
            return b'[{"id":"1","direccion":' + b"[" * 100_000 + b"]" * 100_000 + b"}]"
        if case == "nested_fields":
            return self.nested_fields()
        if case == "non_utf8":
            return b'[{"id":"1","user_name":"\xff\xfe\xfa","direccion":"\xc3\x28"}]'
        if case == "lone_surrogates":
            good = [self.record(1), self.record(2)]
            bad = [self.record(3, user_name="ok"), self.record(4)]
            text = json.dumps(good + bad)
            text = text.replace('"user_name": "ok"', '"user_name": "a\\ud800b"', 1)
            card = str(bad[1]["credit_card_num"])
            return text.replace(json.dumps(card), '"4111\\udfff1111"', 1).encode()
        if case == "null_records":
            return json.dumps([self.record(1), None, 7, "x", [], self.record(2)]).encode()
        if case == "null_fields":
            names = list(self.record(1))
            return json.dumps(
                [
                    dict.fromkeys(names),
                    {**dict.fromkeys(names), "id": "7"},
                    {**dict.fromkeys(names), "id": 8, "user_name": "only a name"},
                ]
            ).encode()
        if case == "numbers_as_strings":
            return json.dumps(
                [
                    self.record(1, id=1, cantidad_compras_realizadas="12", codigo_zip=1234),
                    self.record(2, id="2", credit_card_num=4556737586899855, cuenta_numero=12345678),
                    self.record(3, id=" 3 ", geo_latitud=-34.5, geo_longitud=-58.25, auto_modelo=208),
                ]
            ).encode()
        if case == "ten_mb_fields":
            return self.ten_mb_fields()
        if case == "html_200":
            return b"<html><body><h1>Service Unavailable</h1></body></html>"
        return None

    # --- the app -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        case = request.match_info["case"]
        self.requests[case] = self.requests.get(case, 0) + 1
        page = int(request.query.get("page", "1") or 1)
        limit = int(request.query["limit"]) if "limit" in request.query else None
        if case == "cycle":
            if page == 1:
                self._cycle_at = (self._cycle_at + 1) % len(CYCLE)
                self.cycle_served.append(CYCLE[self._cycle_at])
            case = CYCLE[self._cycle_at]
        single = self.single_body(case)
        if single is not None:
            assert isinstance(single, bytes)
            return web.Response(body=single, content_type="text/html" if case == "html_200" else "application/json")
        return await self._stream(request, case, page, limit)

    async def _stream(self, request: web.Request, case: str, page: int, limit: int | None) -> web.StreamResponse:
        if case == "duplicate_ids":
            pages = {
                1: [self.record(1), self.record(2), self.record(2, user_name="second 2"), self.record(3)],
                2: [self.record(1, user_name="second 1"), self.record(4)],
            }
            return web.json_response(pages.get(page, []))
        if case == "endless":
            size = limit or 10
            return web.json_response([self.record(n) for n in range((page - 1) * size + 1, page * size + 1)])
        if case == "over_page_size":
            size = limit or 10
            return web.json_response([self.record(n) for n in range(1, size + 2)])
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        with contextlib.suppress(ConnectionError, RuntimeError):
            if case == "over_limit_streamed":
                response.enable_chunked_encoding()
                await response.prepare(request)
                await response.write(b'[{"id":"1","direccion":"')
                chunk = b"y" * (64 * 1024)
                for _ in range(64 * MB // len(chunk)):
                    await response.write(chunk)
                await response.write(b'"}]')
            elif case == "over_limit_declared":
                response.content_length = 64 * MB
                await response.prepare(request)
                await response.write(b"[" + b" " * 1024)
                await asyncio.sleep(3)
                self._abort(request)
            elif case == "cut_declared":
                body = json.dumps([self.record(n) for n in range(1, 400)]).encode()
                response.content_length = 200_000
                await response.prepare(request)
                await response.write(body[:100_000])
                self._abort(request)
            elif case == "cut_chunked":
                body = json.dumps([self.record(n) for n in range(1, 60)]).encode()
                response.enable_chunked_encoding()
                await response.prepare(request)
                await response.write(body[: len(body) // 2])
                await asyncio.sleep(0.05)
                self._abort(request)
            elif case == "slow_trickle":
                response.enable_chunked_encoding()
                await response.prepare(request)
                for byte in json.dumps([self.record(1)]).encode():
                    await response.write(bytes([byte]))
                    await asyncio.sleep(0.5)
            else:
                raise web.HTTPNotFound()
        return response

    @staticmethod
    def _abort(request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            transport.abort()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]

        async def start() -> None:
            app = web.Application()
            app.router.add_get("/{case}/usuarios", self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(15)

    def stop(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextlib.contextmanager
def hostile_provider(needles: Needles) -> Iterator[HostileProvider]:
    server = HostileProvider(needles)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def case(name: str) -> Case:
    return next(c for c in CASES if c.name == name)
