"""The provider simulator: the provider's API on loopback, deterministic per seed, with faults.

    Simulator(records=N, seed=S, ...)   the state: ids 1..N at version 0, plus churn
      page(number, limit)               what GET ?page=&limit= answers (records generated on the fly)
      truth() / expected()              the valid current state: what a perfect sync ends with
      change/remove/restore/add         explicit churn for tests; advance() = random churn
      script(Fault...) / fail_page(n)   scripted faults for the next requests / one page
    make_simulator_app(sim)             GET /api/v1/usuarios[?page=N&limit=M], mockapi.io style
    SimulatorActor                      serves it on an already-bound loopback socket

Memory is O(changes), not O(records): a record is a pure function of (seed, id,
version) (`simdata.make_record`), the state keeps only changed versions, removed
ids and the next new id, and the k-th live id is computed from the sorted
removed ids. Random churn (`churn_rate`) is applied when a new snapshot starts
(a request for page 1, or an unpaginated one) after at least one was served.
Fault rates are drawn per request from a seeded generator, so a run is
reproducible for a given request sequence.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import socket
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from daemon.observability.logs import get_logger
from daemon.provider.records import ParsedRecord, parse_record
from daemon.provider.simdata import make_record, unit_hash

__all__ = (
    "HEALTH_PATH",
    "PATH",
    "Churn",
    "Fault",
    "RequestRecord",
    "Simulator",
    "SimulatorActor",
    "bind_loopback",
    "make_simulator_app",
)

log = get_logger("customers_mngr.provider.simulator")

PATH: Final = "/api/v1/usuarios"
HEALTH_PATH: Final = "/health"
_MAX_PARAM: Final = 10**9
_STREAM_ABOVE: Final = 1000  # records; bigger answers are streamed in chunks, never built whole
_BAD_SALT: Final = 0xBAD


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted answer: `status` with `body` and `headers` after `delay_s`, or, with `serve`,
    the normal answer after `delay_s` (a slow page). A delay past the client's timeout is a timeout."""

    status: int = 500
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    serve: bool = False


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the simulator saw it (tests assert on these)."""

    page: int | None
    limit: int | None
    status: int
    authorization: str | None


@dataclass(frozen=True, slots=True)
class Churn:
    changed: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()
    added: tuple[int, ...] = ()


class Simulator:
    """The provider's data and behaviour; see the module docstring."""

    def __init__(
        self,
        *,
        records: int = 100,
        seed: int = 1,
        error_rate: float = 0.0,
        throttle_rate: float = 0.0,
        retry_after: str = "1",
        slow_rate: float = 0.0,
        slow_ms: int = 0,
        bad_rate: float = 0.0,
        churn_rate: float = 0.0,
        from_records: Sequence[object] | None = None,
    ) -> None:
        for name, rate in (
            ("error_rate", error_rate),
            ("throttle_rate", throttle_rate),
            ("slow_rate", slow_rate),
            ("bad_rate", bad_rate),
            ("churn_rate", churn_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within 0..1")
        if records < 0 or slow_ms < 0:
            raise ValueError("records and slow_ms must be >= 0")
        if from_records is not None and churn_rate:
            raise ValueError("churn needs generated records, not a fixed file")
        self.seed = seed
        self.error_rate, self.throttle_rate, self.retry_after = error_rate, throttle_rate, retry_after
        self.slow_rate, self.slow_ms = slow_rate, slow_ms
        self.bad_rate, self.churn_rate = bad_rate, churn_rate
        self._fixed = list(from_records) if from_records is not None else None
        self._next_id = records + 1
        self._removed: list[int] = []  # sorted
        self._removed_set: set[int] = set()
        self._versions: dict[int, int] = {}
        self._faults = random.Random(seed * 7919 + 1)
        self._churn = random.Random(seed * 7919 + 2)
        self._script: deque[Fault] = deque()
        self._page_faults: dict[int, Fault] = {}
        self.snapshots = 0  # snapshots started (page-1 or unpaginated requests served)
        self.url = ""  # set by SimulatorActor once it listens
        self.requests: deque[RequestRecord] = deque(maxlen=10_000)

    # --- the data ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Records served (live ids, bad ones included)."""
        if self._fixed is not None:
            return len(self._fixed)
        return self._next_id - 1 - len(self._removed)

    def is_bad(self, record_id: int) -> bool:
        """Whether a record carries invalid values: fixed per (seed, id), whatever its version."""
        return self.bad_rate > 0 and unit_hash(self.seed, record_id, _BAD_SALT) < self.bad_rate

    def record(self, record_id: int) -> dict[str, object]:
        return make_record(self.seed, record_id, self._versions.get(record_id, 0), bad=self.is_bad(record_id))

    def page(self, number: int | None, limit: int | None) -> Iterator[object]:
        """The records a request answers: all of them without a limit, else the 1-based page."""
        offset = 0 if limit is None or number is None else (number - 1) * limit
        count = max(0, len(self) - offset) if limit is None else max(0, min(limit, len(self) - offset))
        if self._fixed is not None:
            yield from self._fixed[offset : offset + count]
            return
        for record_id in self._live_ids(offset, count):
            yield self.record(record_id)

    def records(self) -> Iterator[object]:
        """Every record currently served, in order."""
        return self.page(None, None)

    def expected(self) -> dict[int, ParsedRecord]:
        """The valid current state by id (duplicates: the last wins): what a perfect sync stores."""
        state: dict[int, ParsedRecord] = {}
        for raw in self.records():
            parsed = parse_record(raw)
            if isinstance(parsed, ParsedRecord):
                state[parsed.id] = parsed
        return dict(sorted(state.items()))

    def truth(self) -> list[dict[str, object]]:
        """The valid current records as the provider sends them, one per id, by id."""
        chosen: dict[int, dict[str, object]] = {}
        for raw in self.records():
            parsed = parse_record(raw)
            if isinstance(parsed, ParsedRecord) and isinstance(raw, dict):
                chosen[parsed.id] = raw
        return [chosen[key] for key in sorted(chosen)]

    def _live_ids(self, offset: int, count: int) -> Iterator[int]:
        if count <= 0:
            return
        # The (offset+1)-th live id x satisfies x = offset + 1 + removed(<= x); iterate to the least fixpoint.
        x = offset + 1
        while (nxt := offset + 1 + bisect.bisect_right(self._removed, x)) != x:
            x = nxt
        produced = 0
        while produced < count and x < self._next_id:
            if x not in self._removed_set:
                yield x
                produced += 1
            x += 1

    # --- churn ------------------------------------------------------------------------------

    def change(self, ids: Sequence[int]) -> None:
        for record_id in ids:
            self._versions[record_id] = self._versions.get(record_id, 0) + 1

    def remove(self, ids: Sequence[int]) -> None:
        for record_id in ids:
            if 0 < record_id < self._next_id and record_id not in self._removed_set:
                self._removed_set.add(record_id)
                bisect.insort(self._removed, record_id)

    def restore(self, ids: Sequence[int]) -> None:
        for record_id in ids:
            if record_id in self._removed_set:
                self._removed_set.discard(record_id)
                self._removed.pop(bisect.bisect_left(self._removed, record_id))

    def add(self, count: int) -> tuple[int, ...]:
        added = tuple(range(self._next_id, self._next_id + count))
        self._next_id += count
        return added

    def advance(self, rate: float | None = None) -> Churn:
        """Random churn: about `rate` (default churn_rate) of the records changed, removed or added."""
        if self._fixed is not None:
            raise ValueError("a fixed file does not churn")
        live = len(self)
        total = round(live * (self.churn_rate if rate is None else rate))
        if total <= 0:
            return Churn()
        picks = sorted({self._churn.randrange(1, self._next_id) for _ in range(total)} - self._removed_set)
        self._churn.shuffle(picks)
        third = len(picks) // 3
        changed, removed = sorted(picks[:third]), sorted(picks[third : 2 * third])
        self.change(changed)
        self.remove(removed)
        churn = Churn(tuple(changed), tuple(removed), self.add(max(1, total - len(changed) - len(removed))))
        log.debug("simulator_advanced", changed=len(churn.changed), removed=len(churn.removed), added=len(churn.added))
        return churn

    # --- faults -----------------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        """The next requests (one fault each, in order) answer with these faults."""
        self._script.extend(faults)

    def fail_page(self, number: int, fault: Fault | None = None) -> None:
        """Every request for page `number` answers `fault` (default 500) until `heal_page`."""
        self._page_faults[number] = fault or Fault()

    def heal_page(self, number: int) -> None:
        self._page_faults.pop(number, None)

    def next_fault(self, number: int | None) -> Fault | None:
        """The fault for this request: scripted, then per page, then drawn from the rates."""
        if self._script:
            return self._script.popleft()
        if number is not None and number in self._page_faults:
            return self._page_faults[number]
        draw = self._faults.random()
        if draw < self.throttle_rate:
            return Fault(status=429, headers={"Retry-After": self.retry_after})
        if draw < self.throttle_rate + self.error_rate:
            return Fault(status=self._faults.choice((500, 502, 503)))
        if self.slow_rate and self._faults.random() < self.slow_rate:
            return Fault(delay_s=self.slow_ms / 1000, serve=True)
        return None

    def begin_snapshot(self) -> None:
        if self.snapshots and self.churn_rate:
            self.advance()
        self.snapshots += 1


# --- the HTTP app -----------------------------------------------------------------------------

SIMULATOR_KEY: Final = web.AppKey("simulator", Simulator)


def make_simulator_app(sim: Simulator) -> web.Application:
    """GET /api/v1/usuarios (all records) or ?page=N&limit=M (1-based; a short page is the last); GET /health."""
    app = web.Application()
    app[SIMULATOR_KEY] = sim
    app.router.add_get(PATH, _list_records)
    app.router.add_get(HEALTH_PATH, _health)
    return app


async def _health(_request: web.Request) -> web.Response:
    """Readiness for compose and tests: answers without starting a snapshot or drawing a fault."""
    return web.json_response({"status": "ok"})


async def _list_records(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    try:
        number, limit = _pagination(request.query)
    except ValueError as exc:
        sim.requests.append(RequestRecord(None, None, 400, request.headers.get("Authorization")))
        return web.json_response({"error": str(exc)}, status=400)
    fault = sim.next_fault(number)
    status = 200 if fault is None or fault.serve else fault.status
    sim.requests.append(RequestRecord(number, limit, status, request.headers.get("Authorization")))
    if fault is not None:
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if not fault.serve:
            body = fault.body if fault.body is not None else json.dumps({"error": "simulated"}).encode()
            headers = {"Content-Type": "application/json", **fault.headers}
            return web.Response(status=fault.status, body=body, headers=headers)
    if number in (None, 1):
        sim.begin_snapshot()
    return await _respond(request, sim.page(number, limit), small=limit is not None and limit <= _STREAM_ABOVE)


def _pagination(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    page, limit = query.get("page"), query.get("limit")
    if page is None and limit is None:
        return None, None
    if limit is None:
        raise ValueError("page needs limit")
    values = []
    for name, raw in (("page", page or "1"), ("limit", limit)):
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= _MAX_PARAM:
            raise ValueError(f"{name} must be an integer from 1")
        values.append(int(raw))
    return values[0], values[1]


async def _respond(request: web.Request, records: Iterator[object], *, small: bool) -> web.StreamResponse:
    if small:
        return web.Response(body=json.dumps(list(records)).encode(), content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"[")
    first = True
    batch: list[str] = []
    for record in records:
        batch.append(json.dumps(record))
        if len(batch) == 500:
            await response.write((("" if first else ",") + ",".join(batch)).encode())
            first, batch = False, []
    if batch:
        await response.write((("" if first else ",") + ",".join(batch)).encode())
    await response.write(b"]")
    await response.write_eof()
    return response


# --- the actor --------------------------------------------------------------------------------


def bind_loopback(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening socket bound now, so its URL is known before anything that uses it is built."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class SimulatorActor:
    """Serves the simulator on `sock` until cancelled. The socket stays the caller's: each run
    serves a duplicate of it, so a restart by the supervisor listens on the same port."""

    name = "provider-sim"

    def __init__(self, *, simulator: Simulator, sock: socket.socket, shutdown_timeout_s: float = 2.0) -> None:
        self.simulator = simulator
        self._sock = sock
        self._shutdown_timeout_s = shutdown_timeout_s
        self.listening = asyncio.Event()

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}{PATH}"

    async def run(self) -> None:
        runner = web.AppRunner(
            make_simulator_app(self.simulator),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self._shutdown_timeout_s,
        )
        await runner.setup()
        try:
            await web.SockSite(runner, self._sock.dup()).start()
            self.simulator.url = self.url
            self.listening.set()
            log.info("simulator_listening", url=self.url, records=len(self.simulator), seed=self.simulator.seed)
            await asyncio.Future()  # serve until cancelled
        finally:
            self.listening.clear()
            await runner.cleanup()

    def close(self) -> None:
        """Close the listening socket (after the actor has stopped)."""
        self._sock.close()
