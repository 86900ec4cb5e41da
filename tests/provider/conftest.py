"""Provider fixtures: settings built directly, a captured JSON log, a session per test."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from daemon.config.process import LogSettings
from daemon.config.sync import ProviderSettings
from daemon.observability.logs import configure_logging
from daemon.observability.metrics import Metrics
from daemon.provider.client import ProviderClient, open_provider_session


def provider_settings(**changes: Any) -> ProviderSettings:
    values: dict[str, Any] = {
        "url": None,
        "page_size": 10,
        "timeout_s": 5.0,
        "max_retries": 3,
        "retry_max_wait_s": 0.02,
        "auth_header": None,
        "max_pages": 1000,
        "max_body_bytes": 1 << 20,
        "tls_verify": True,
    }
    values.update(changes)
    return ProviderSettings(**values)


class LogCapture:
    def __init__(self) -> None:
        self.stream = io.StringIO()
        configure_logging(LogSettings(level="debug", format="json"), stream=self.stream)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("event") == name]


@pytest.fixture
def logs() -> LogCapture:
    return LogCapture()


ClientFactory = Callable[..., ProviderClient]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with open_provider_session(provider_settings()) as s:
        yield s


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(f"customers_mngr_{name}", labels or None)
    return value or 0.0
