"""The fetch-and-store stage of one run: pages in, fenced batches out, the stages overlapped.

Everything runs in one TaskGroup per run (see runner.py), in one asyncio thread:

- **pages ahead**: the next provider pages are fetched while the current one is
  processed — PAGES_AHEAD requests at once when the source can be read by page
  number (the provider client), else one page ahead — so memory stays bounded
  by the page; pages fetched past the snapshot's last one are dropped;
- **one write in flight**: a full batch is written by a task of its own while
  the next one is filled. The next batch's write starts only once the previous
  one committed, so a write that fails (fenced, leadership lost, the DB) ends
  the run with nothing after it written. Every write still checks the lock and
  the epoch inside its own transaction (Store.write). When most parsed records
  will be written (an empty table, or raw hashes already sorting out the
  unchanged), each record's content hash and row (ciphertexts, SQL literal)
  are built as it is parsed, so that work overlaps the write in flight rather
  than running inside the next transaction; the transaction still decides,
  from what is stored, what is written.
- **unchanged records skip validation**: records are taken in rounds of
  SYNC_BATCH_SIZE, each hashed as the provider sent it (keyed, its CVV left
  out: records.raw_digest_input), and one SELECT reads the raw hashes stored
  for the round's live rows. A record whose hash matches is unchanged and is
  not parsed (its anomalies are not counted again; its unknown fields are).
  Every other record — new, changed, soft-deleted (then restored), or one whose
  row a write in flight may be changing — is parsed and goes through the batch,
  where the content hash decides, inside the transaction, what is written.

`Flow.run` never raises an Exception: it returns it, after cancelling what it
started, so the TaskGroup around it ends without wrapping it in an
ExceptionGroup. CancelledError propagates: the TaskGroup then cancels the
prefetch and the write in flight, whose transaction rolls back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from daemon.crypto.keyring import Keyring
from daemon.errors import ProviderError
from daemon.observability.metrics import ANOMALIES, Metrics
from daemon.provider.records import (
    ParsedRecord,
    Rejected,
    parse_record,
    quick_id,
    raw_digest_input,
    unknown_field_count,
)
from daemon.syncer.runs import RunCounts
from daemon.syncer.store import Batch, Store

__all__ = ("Flow", "Page", "Progress", "Snapshot")


class Page(Protocol):
    """What the runner needs of a provider page (daemon.provider.client.Page has it)."""

    @property
    def records(self) -> Sequence[object]: ...


@runtime_checkable
class NumberedPages(Protocol):
    """A page source that can also be read by page number (daemon.provider.client.PageStream)."""

    page_size: int  # 0: a single request, read by iterating
    max_pages: int

    async def page(self, number: int) -> Page: ...

    def too_many_pages(self) -> Exception: ...


Progress = Callable[[RunCounts, float], None]  # counts so far, seconds since the run started

# Provider pages requested ahead of the one being processed, when the source is numbered:
# enough to hide a request's round trip behind the processing of the pages before it, and
# few enough to stay polite to the provider (and bounded in memory by the page size).
PAGES_AHEAD: Final = 3

_OUTCOMES: Final = ("inserted", "updated", "unchanged", "restored", "rejected")
_END: Final = object()  # the page source ended: the snapshot is complete
_Candidate = tuple[object, int | None, bytes | None]  # the raw record, its quick id, its raw hash


@dataclass(slots=True)
class _Round:
    """Up to SYNC_BATCH_SIZE records in arrival order, and the lookup of their stored raw hashes."""

    candidates: list[_Candidate]
    lookup: asyncio.Task[dict[int, bytes] | Exception] | None
    # Ids a write may change before or after the lookup reads them: the batch in flight when the
    # lookup started, and every batch flushed until this round is classified.
    unsafe: set[int]


@dataclass(slots=True)
class Snapshot:
    """What one run accumulates: its counts, the ids seen, the batch being filled."""

    counts: RunCounts = field(default_factory=RunCounts)
    seen: set[int] = field(default_factory=set)  # valid ids of this snapshot
    kept: set[int] = field(default_factory=set)  # ids of invalid records: stored rows stay
    batch: Batch = field(default_factory=Batch)
    skipped: set[int] = field(default_factory=set)  # ids found unchanged by raw hash in the current round

    def __contains__(self, record_id: object) -> bool:
        return record_id in self.seen or record_id in self.kept


class Flow:
    """One run's pipeline: page prefetch, rounds of raw-hash lookups, one write in flight."""

    def __init__(
        self,
        tasks: asyncio.TaskGroup,
        snap: Snapshot,
        *,
        store: Store,
        keyring: Keyring,
        metrics: Metrics,
        batch_size: int,
        run_id: int,
        epoch: int,
        lookups: bool,
        prepare: bool,
    ) -> None:
        self._tasks = tasks
        self._snap = snap
        self._store = store
        self._keyring = keyring
        self._metrics = metrics
        self._batch_size = batch_size
        self._run_id = run_id
        self._epoch = epoch
        self._lookups = lookups  # False when no stored row has a raw hash (a first load)
        self._prepare = prepare  # build rows as records are parsed: most parsed records will be written
        self._round: list[_Candidate] = []  # being filled
        self._open: list[_Round] = []  # looked up (or being), not yet classified: at most two
        self._writing: asyncio.Task[RunCounts | Exception] | None = None
        self._writing_ids: set[int] = set()

    async def run(self, pages: AsyncIterator[Page], *, started: float, progress: Progress | None) -> Exception | None:
        """Every page to the end, every batch committed; or the Exception that stopped it."""
        feed: _Window | _OneAhead | None = None
        try:
            feed = _feed(self._tasks, pages)
            while (page := await self._next_page(feed)) is not _END:
                if isinstance(page, ProviderError):
                    await self._finish()  # what was read is valid: keep it
                    return page
                if isinstance(page, Exception):
                    return page
                await self._process(page)  # type: ignore[arg-type]
                if progress is not None:
                    progress(self._snap.counts, time.monotonic() - started)
            await self._finish()
            return None
        except Exception as exc:
            return exc
        finally:
            if feed is not None:
                feed.cancel()
            for task in (self._writing, *(r.lookup for r in self._open)):
                if task is not None and not task.done():
                    task.cancel()  # the TaskGroup waits for them; a write in flight rolls back

    async def _next_page(self, feed: _Window | _OneAhead) -> object:
        if self._open and not feed.ready():
            await self._classify_open()  # the page is not there yet: use the wait
        return await feed.next()

    async def _process(self, page: Page) -> None:
        self._check_write()
        self._snap.counts.pages += 1
        for raw in page.records:
            self._add(raw)
            if len(self._round) >= self._batch_size:
                await self._close_round()

    async def _finish(self) -> None:
        """Every record read classified, every batch written."""
        await self._close_round()
        await self._classify_open()
        await self._flush()
        await self._drain()

    # --- rounds: raw hashes, lookup, skip or parse ------------------------------------------

    def _add(self, raw: object) -> None:
        """Queue one provider record for this round, with its quick id and raw hash when it has them.

        The raw hash is computed even when no lookup is made (a first load): it is stored with the row.
        """
        if not isinstance(raw, dict):
            self._round.append((raw, None, None))
            return
        record_id = quick_id(raw)
        digest = raw_digest_input(raw) if record_id is not None else None
        self._round.append((raw, record_id, None if digest is None else self._keyring.raw_hash(digest)))

    async def _close_round(self) -> None:
        """Start the lookup of the round just filled; classify the round before it meanwhile.

        So the lookup's round trip overlaps the classification of the previous round and the
        reading of the next one (two rounds of raw records held at most: bounded by the batch).
        """
        candidates, self._round = self._round, []
        if not candidates:
            return
        lookup = None
        if self._lookups:
            ids = {record_id for _, record_id, digest in candidates if digest is not None and record_id is not None}
            if ids:
                lookup = self._tasks.create_task(_looked_up(self._store, ids))
        writing = self._writing is not None and not self._writing.done()
        self._open.append(_Round(candidates, lookup, set(self._writing_ids) if writing else set()))
        if lookup is None:  # nothing to wait for: classify now (and any round before it, in order)
            await self._classify_open()
        elif len(self._open) > 1:
            await self._classify(self._open[0])

    async def _classify_open(self) -> None:
        while self._open:
            await self._classify(self._open[0])

    async def _classify(self, round_: _Round) -> None:
        """Skip the round's unchanged records, parse the others, in arrival order."""
        stored: dict[int, bytes] = {}
        if round_.lookup is not None:
            found = await round_.lookup
            if isinstance(found, Exception):
                raise found
            stored = found
        snap = self._snap
        for raw, record_id, digest in round_.candidates:
            if (
                digest is not None
                and record_id is not None
                and stored.get(record_id) == digest
                and record_id not in round_.unsafe
            ):
                self._skip(record_id, raw)  # type: ignore[arg-type]  # a candidate with a digest is a dict
                continue
            parsed = parse_record(raw)
            same = isinstance(parsed, ParsedRecord) and parsed.id == record_id
            self._take(parsed, digest if same else None)
            if len(snap.batch) >= self._batch_size:
                await self._flush()
        self._count_skipped()
        self._open.remove(round_)

    def _skip(self, record_id: int, raw: Mapping[object, object]) -> None:
        """A record whose raw hash is its live row's: unchanged, not parsed."""
        snap = self._snap
        snap.counts.fetched += 1
        self._see(record_id)
        snap.skipped.add(record_id)
        snap.batch.drop(record_id)  # an earlier record of the id, superseded by this one
        if unknown := unknown_field_count(raw):
            self._unknown(unknown)

    def _take(self, parsed: ParsedRecord | Rejected, raw_hash: bytes | None) -> None:
        snap = self._snap
        snap.counts.fetched += 1
        if isinstance(parsed, Rejected):
            snap.batch.rejected.append(parsed)
            if parsed.id is not None:  # the provider still has this customer: its stored row stays
                snap.kept.add(parsed.id)
            return
        record_id = parsed.id
        self._see(record_id)
        snap.skipped.discard(record_id)  # a later record of the id: this one counts
        batch = snap.batch
        batch.drop(record_id)  # the last one of a duplicate wins
        batch.records[record_id] = parsed
        if raw_hash is not None:
            batch.raw_hashes[record_id] = raw_hash
        if self._prepare:
            batch.prepared[record_id] = self._store.prepare(parsed, raw_hash)
        if parsed.unknown_fields:
            self._unknown(parsed.unknown_fields)
        for kind in parsed.anomalies:
            if kind in ANOMALIES:  # label values stay a fixed, declared set
                self._metrics.sync_anomalies.labels(kind=kind).inc()

    def _see(self, record_id: int) -> None:
        snap = self._snap
        if record_id in snap.seen:
            snap.counts.duplicates += 1
            self._metrics.sync_anomalies.labels(kind="duplicate_id").inc()
        snap.seen.add(record_id)

    def _unknown(self, count: int) -> None:
        self._snap.counts.unknown_fields += count
        self._metrics.sync_unknown_fields.inc(count)

    def _count_skipped(self) -> None:
        snap = self._snap
        if snap.skipped:
            snap.counts.unchanged += len(snap.skipped)
            self._metrics.sync_records.labels(outcome="unchanged").inc(len(snap.skipped))
            snap.skipped = set()

    # --- writes: one in flight ----------------------------------------------------------------

    async def _flush(self) -> None:
        """Start writing the batch filled so far, once the write before it has committed."""
        snap = self._snap
        if not len(snap.batch):
            return
        batch, snap.batch = snap.batch, Batch()
        await self._drain()
        self._writing_ids = set(batch.records)
        for round_ in self._open:  # their lookups may read these rows before or after this write commits
            round_.unsafe |= self._writing_ids
        self._writing = self._tasks.create_task(self._write(batch))

    async def _write(self, batch: Batch) -> RunCounts | Exception:
        try:
            done = await self._store.write(batch, run_id=self._run_id, epoch=self._epoch)
        except Exception as exc:  # handed to the pipeline, which stops: nothing after it is written
            return exc
        self._written(done)  # counted once committed, even if the run is stopped right after
        return done

    def _written(self, done: RunCounts) -> None:
        self._snap.counts.add(done)
        for outcome in _OUTCOMES:
            if value := getattr(done, outcome):
                self._metrics.sync_records.labels(outcome=outcome).inc(value)

    def _check_write(self) -> None:
        """Stop as soon as a finished write failed, rather than at the next batch."""
        if self._writing is not None and self._writing.done():
            result = self._writing.result()
            if isinstance(result, Exception):
                raise result

    async def _drain(self) -> None:
        """Wait for the write in flight; raise what it failed with."""
        writing = self._writing
        if writing is None:
            return
        result = await writing
        self._writing = None
        if isinstance(result, Exception):
            raise result


async def _looked_up(store: Store, ids: set[int]) -> dict[int, bytes] | Exception:
    """The stored raw hashes of `ids`, or the Exception (as a value: see Flow.run)."""
    try:
        return await store.raw_hashes(ids)
    except Exception as exc:
        return exc


def _feed(tasks: asyncio.TaskGroup, pages: AsyncIterator[Page]) -> _Window | _OneAhead:
    if isinstance(pages, NumberedPages) and pages.page_size > 0:
        return _Window(tasks, pages, depth=PAGES_AHEAD)
    return _OneAhead(tasks, pages)


class _OneAhead:
    """Pages of any source, in order: the next one is requested as soon as one is handed out."""

    def __init__(self, tasks: asyncio.TaskGroup, pages: AsyncIterator[Page]) -> None:
        self._tasks = tasks
        self._pages = pages
        self._next: asyncio.Task[object] | None = tasks.create_task(_advance(pages))

    def ready(self) -> bool:
        return self._next is None or self._next.done()

    async def next(self) -> object:
        """A page, _END, or the Exception the source raised."""
        if self._next is None:
            return _END
        result = await self._next
        self._next = None
        if result is not _END and not isinstance(result, Exception):
            self._next = self._tasks.create_task(_advance(self._pages))  # one page ahead
        return result

    def cancel(self) -> None:
        if self._next is not None and not self._next.done():
            self._next.cancel()


class _Window:
    """Pages of a numbered source, in order, with up to `depth` requests in flight.

    The snapshot ends at the first page shorter than the page size (requests past it are
    cancelled); a full page number max_pages means the provider never ends (an error, as
    the client's own iteration says).
    """

    def __init__(self, tasks: asyncio.TaskGroup, pages: NumberedPages, *, depth: int) -> None:
        self._tasks = tasks
        self._pages = pages
        self._depth = depth
        self._number = 1  # the next page to request
        self._inflight: deque[asyncio.Task[object]] = deque()
        self._ended = False
        self._fill()

    def _fill(self) -> None:
        while not self._ended and len(self._inflight) < self._depth and self._number <= self._pages.max_pages:
            self._inflight.append(self._tasks.create_task(_numbered(self._pages, self._number)))
            self._number += 1

    def ready(self) -> bool:
        return self._ended or not self._inflight or self._inflight[0].done()

    async def next(self) -> object:
        """A page, _END, or the Exception that ends the snapshot (handed out in page order)."""
        if self._ended:
            return _END
        if not self._inflight:  # page max_pages was full
            return self._pages.too_many_pages()
        result = await self._inflight[0]
        del self._inflight[0]
        if isinstance(result, Exception):
            return result
        if len(result.records) < self._pages.page_size:  # type: ignore[attr-defined]  # short or empty: the last
            self._ended = True
            self.cancel()
        else:
            self._fill()
        return result

    def cancel(self) -> None:
        for task in self._inflight:
            if not task.done():
                task.cancel()
        self._inflight.clear()


async def _numbered(pages: NumberedPages, number: int) -> object:
    """Page `number`, or the Exception fetching it raised (as a value: see Flow.run)."""
    try:
        return await pages.page(number)
    except Exception as exc:
        return exc


async def _advance(pages: AsyncIterator[Page]) -> object:
    """The next page, _END, or the Exception the source raised (as a value: see Flow.run)."""
    try:
        return await anext(pages)
    except StopAsyncIteration:
        return _END
    except Exception as exc:
        return exc
