"""A per-client budget of authentication failures: past it, that client's 401s are answered late.

A token is 256 random bits, so guessing one is hopeless; what a flood of bad
tokens can do is take CPU and log volume from the valid clients. Each client
address has a token bucket of failures (`burst`, refilled at `rate_per_s`).
A 401 within the budget is answered at once; past it, after `delay_s` — still
a 401, logged and audited like any other — so a client that keeps failing gets
at most (its connections / `delay_s`) answers per second however fast it sends.
Valid requests never touch the budget, and neither do 403s (their token is valid).

Bounded: at most `max_delayed` answers wait at once (past that a 401 is
answered at once, so the waiting itself cannot pile up), and at most
`max_clients` addresses are remembered (the least recently failed forgotten first).

The client is the TCP peer (`request.remote`), never X-Forwarded-For, which the
caller writes itself. Behind a load balancer every client shares its address:
a flood then delays every *failing* client's 401 — never a valid request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from daemon.observability.logs import get_logger

__all__ = ("BudgetPolicy", "FailureBudget")

log = get_logger("customers_mngr.api")


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    burst: float = 20.0  # failures a client may have at once before its 401s wait
    rate_per_s: float = 2.0  # failures given back per second
    delay_s: float = 1.0  # how late a 401 past the budget is answered
    max_delayed: int = 1000  # answers waiting at once, all clients together
    max_clients: int = 10_000  # addresses remembered


class FailureBudget:
    """The failure buckets of every client address; `answer_late()` is awaited for each 401."""

    __slots__ = ("_buckets", "_clock", "_waiting", "delayed", "policy")

    def __init__(self, policy: BudgetPolicy | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or BudgetPolicy()
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (failures left, at)
        self._waiting = 0
        self.delayed = 0  # 401s answered late so far

    def charge(self, client: str | None) -> float:
        """Count one failure of `client`; return how late its answer should be (0.0 within budget)."""
        policy = self.policy
        key = client or "unknown"
        now = self._clock()
        left, at = self._buckets.pop(key, (policy.burst, now))
        left = min(policy.burst, left + (now - at) * policy.rate_per_s)
        if left >= 1.0:
            self._remember(key, left - 1.0, now)
            return 0.0
        self._remember(key, left, now)
        return policy.delay_s

    def _remember(self, key: str, left: float, now: float) -> None:
        self._buckets[key] = (left, now)
        while len(self._buckets) > self.policy.max_clients:
            self._buckets.popitem(last=False)

    async def answer_late(self, client: str | None) -> None:
        """Wait before a 401 goes out when `client` is past its budget (and the waiting room has space)."""
        delay = self.charge(client)
        if delay <= 0.0 or self._waiting >= self.policy.max_delayed:
            return
        if self.delayed % 1000 == 0:  # a flood is visible in the log without a line per request
            log.warning("api_auth_failures_delayed", delayed_so_far=self.delayed, delay_s=delay)
        self.delayed += 1
        self._waiting += 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._waiting -= 1
