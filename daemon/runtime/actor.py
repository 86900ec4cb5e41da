"""What an actor is: a named object with an async `run()`.

Contract (every actor module follows it):

    run() ──> set up (open what only it needs) ──> work until cancelled ──> clean up in finally
              │                                              │
              └── raises Exception: a crash; the supervisor restarts it with backoff
                                                             └── returns: done, not restarted

`run()` must let `CancelledError` propagate (never swallow it) and must
bound its own clean-up so the shutdown budget holds.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ("Actor",)


@runtime_checkable
class Actor(Protocol):
    @property
    def name(self) -> str: ...

    async def run(self) -> None: ...
