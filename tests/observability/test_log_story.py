"""Logs that tell the story: what each actor says, with its context bound, at a bounded volume.

Each story is read back from the JSON lines the real logging set-up renders.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from daemon.config.process import LogSettings
from daemon.errors import DatabaseUnavailable
from daemon.observability.logs import configure_logging
from daemon.observability.metrics import Metrics
from daemon.runtime.supervisor import RestartPolicy, Supervisor

__all__ = ("LogCapture",)


class LogCapture:
    """The JSON log lines written while it is installed."""

    def __init__(self, level: str = "info") -> None:
        self.stream = io.StringIO()
        configure_logging(LogSettings(level=level, format="json"), stream=self.stream)  # type: ignore[arg-type]

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    yield LogCapture()


class Crashing:
    """Crashes twice (a bug, then an expected failure), then finishes."""

    name = "worker"

    def __init__(self) -> None:
        self.starts = 0

    async def run(self) -> None:
        self.starts += 1
        if self.starts == 1:
            raise KeyError("boom")
        if self.starts == 2:
            raise DatabaseUnavailable("database unreachable")


async def test_each_actor_restart_logs_the_error_and_the_backoff(logs: LogCapture, metrics: Metrics) -> None:
    """A crash is one `actor_crashed` error line with the actor, the error, its type and the backoff."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RestartPolicy(max_restarts=5, window_s=60, backoff_initial_s=1, backoff_max_s=8)
    await Supervisor(policy, metrics=metrics, sleep=sleep, rand=lambda: 1.0).supervise(Crashing())
    crashed = logs.events("actor_crashed")
    assert [c["level"] for c in crashed] == ["error", "error"]
    assert [c["actor"] for c in crashed] == ["worker", "worker"]
    assert [c["restart_in_s"] for c in crashed] == waits == [1, 2]
    assert crashed[0]["error_type"] == "KeyError" and "Traceback" in crashed[0]["exception"]  # a bug: traceback
    assert crashed[1]["error"] == "database unreachable" and "exception" not in crashed[1]  # expected: one line
    assert [line["actor"] for line in logs.events("actor_restarting")] == ["worker", "worker"]
    assert all(line.get("actor") == "worker" for line in logs.lines())
    assert metrics.actor_restarts.labels(actor="worker")._value.get() == 2
