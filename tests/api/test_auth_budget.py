"""The per-client budget of authentication failures: past it a client's 401s are answered late, never others."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from daemon.api.app import ApiOptions
from daemon.api.budget import BudgetPolicy, FailureBudget
from tests.api.conftest import Api, Logs, MakeApi
from tests.api.support import TOKENS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_delay_then_refill() -> None:
    """`burst` failures are free, the next ones are delayed, and the budget refills at `rate_per_s`."""
    clock = Clock()
    budget = FailureBudget(BudgetPolicy(burst=3, rate_per_s=1.0, delay_s=0.7), clock=clock)
    assert [budget.charge("10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.charge("10.0.0.1") == 0.7
    assert budget.charge("10.0.0.2") == 0.0, "another client has its own budget"
    clock.now += 1.0
    assert budget.charge("10.0.0.1") == 0.0, "one failure given back after a second"
    assert budget.charge("10.0.0.1") == 0.7
    clock.now += 100.0
    assert [budget.charge("10.0.0.1") for _ in range(4)] == [0.0, 0.0, 0.0, 0.7], "refilled up to the burst only"


def test_remembers_a_bounded_number_of_clients() -> None:
    """Past `max_clients`, the least recently failed client is forgotten (its budget starts afresh)."""
    budget = FailureBudget(BudgetPolicy(burst=1, rate_per_s=0.0, delay_s=1.0, max_clients=2), clock=Clock())
    assert budget.charge("a") == 0.0 and budget.charge("a") == 1.0
    budget.charge("b")
    budget.charge("c")  # "a" is forgotten
    assert budget.charge("a") == 0.0
    assert len(budget._buckets) == 2


async def test_waiting_room_is_bounded() -> None:
    """At most `max_delayed` answers wait at once; beyond that a 401 goes out at once."""
    budget = FailureBudget(BudgetPolicy(burst=0, rate_per_s=0.0, delay_s=0.3, max_delayed=2))
    waits = [asyncio.ensure_future(budget.answer_late("x")) for _ in range(2)]
    await asyncio.sleep(0)
    await budget.answer_late("x")  # the room is full: no wait
    # It returned while the two before it (same delay, started first) still wait: it did not wait.
    assert not any(w.done() for w in waits) and budget.delayed == 2
    await asyncio.gather(*waits)
    assert budget.delayed == 2


async def _timed(api: Api, **headers: str) -> tuple[int, float, Any]:
    started = time.monotonic()
    response = await api.client.get("/clientes?limit=5", headers=headers)
    body = await response.read()
    return response.status, time.monotonic() - started, (response.headers, body)


async def test_past_the_budget_401s_are_late_and_valid_requests_are_not(make_api: MakeApi, logs: Logs) -> None:
    """After `burst` bad tokens the client's next 401s take `delay_s`; a valid token is served at once; all audited."""
    policy = BudgetPolicy(burst=3, rate_per_s=0.001, delay_s=1.5)
    api = await make_api(options=ApiOptions(version_ttl_s=0.0, auth_budget=policy))
    quick = [await _timed(api, Authorization=f"Bearer wrong-{n}") for n in range(3)]
    assert all(status == 401 for status, _, _ in quick)
    status, late, (headers, body) = await _timed(api, Authorization="Bearer wrong-late")
    assert status == 401 and late >= 1.4, late
    assert headers["Content-Type"] == "application/problem+json" and b"unauthorized" in body
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, valid, _ = await _timed(api, Authorization=f"Bearer {TOKENS['viewer']}")
    assert status == 200 and valid < 1.4, "a valid request never waits for the budget"
    missing_status, missing, _ = await _timed(api)
    assert missing_status == 401 and missing >= 1.4, "a missing token counts as a failure too"
    audit = [e for e in logs.audit() if e["status"] == 401]
    assert len(audit) == 5, "every refused request is still audited"
    assert "wrong-late" not in logs.text, "no presented token reaches the log"
