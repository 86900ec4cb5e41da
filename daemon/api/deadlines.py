"""Request time limits (API_REQUEST_TIMEOUT_S) enforced by one shared sweep rather than a timer each.

`asyncio.timeout()` arms and cancels a loop timer per request: ~5 µs, a
twentieth of a cached answer's whole cost. Here a request registers its
deadline in a dict (a hash insert), and one timer, re-armed every `tick_s`
only while requests are registered, cancels the tasks whose deadline has
passed. On the way out, an expired limit behaves exactly as asyncio.timeout:
the cancellation it caused is withdrawn (`Task.uncancel`) and turned into
`TimeoutError`, unless someone else (a shutdown) also cancelled the task, in
which case the `CancelledError` goes on. A limit fires at most `tick_s` late.

Everything runs on the event loop's thread: the sweep runs between task
steps, so a request that finished has always been unregistered before any
sweep could see it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Final

__all__ = ("DEFAULT_TICK_S", "Deadlines", "Limit")

DEFAULT_TICK_S: Final = 0.05


class Deadlines:
    """The registered limits of one application, and the timer that sweeps them."""

    __slots__ = ("_entries", "_handle", "_tick_s")

    def __init__(self, *, tick_s: float = DEFAULT_TICK_S) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        self._tick_s = tick_s
        self._entries: dict[Limit, float] = {}
        self._handle: asyncio.TimerHandle | None = None

    def limit(self, timeout_s: float) -> Limit:
        """A context manager: the current task may run its body for `timeout_s` (+ at most one tick)."""
        return Limit(self, timeout_s)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def close(self) -> None:
        """Stop the sweep (the application is shutting down); limits still registered no longer fire."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._entries.clear()

    def _add(self, limit: Limit, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        self._entries[limit] = deadline
        if self._handle is None:
            self._handle = loop.call_at(loop.time() + self._tick_s, self._sweep, loop)

    def _remove(self, limit: Limit) -> None:
        self._entries.pop(limit, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        now = loop.time()
        expired = [limit for limit, deadline in self._entries.items() if deadline <= now]
        for limit in expired:
            del self._entries[limit]
            limit._expire()
        if self._entries:
            self._handle = loop.call_at(now + self._tick_s, self._sweep, loop)


class Limit:
    """One request's limit: `with deadlines.limit(s):` around what it awaits (the current task's)."""

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_task", "_timeout_s")

    def __init__(self, deadlines: Deadlines, timeout_s: float) -> None:
        self._deadlines = deadlines
        self._timeout_s = timeout_s
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._expired = False

    @property
    def expired(self) -> bool:
        return self._expired

    def __enter__(self) -> Limit:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Limit must be used inside a task")
        loop = task.get_loop()
        self._task = task
        self._cancelling = task.cancelling()
        self._deadlines._add(self, loop.time() + self._timeout_s, loop)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._deadlines._remove(self)
        # As asyncio.timeout: an expired limit withdraws its cancellation (uncancel, always); if that was the
        # only one and it is what ends the body, it was a timeout.
        expired, task = self._expired, self._task
        if expired and task is not None and task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _expire(self) -> None:
        if self._task is not None and not self._task.done():
            self._expired = True
            self._task.cancel()
