"""The API under test: a real app on the real DB through aiohttp's test client, logs captured."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from daemon.api.app import ApiOptions, build_api_app
from daemon.config import Settings
from daemon.config.process import LogSettings
from daemon.crypto.keyring import Keyring
from daemon.db.connect import open_database
from daemon.db.database import Database
from daemon.db.migrate import migrate
from daemon.observability.logs import configure_logging
from daemon.observability.metrics import Metrics
from daemon.provider.simulator import Simulator
from tests.api.support import TOKENS, Feed, api_tokens_env

SEEDED = 250  # three pages of 100


@dataclass
class Logs:
    stream: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def events(self, name: str | None = None, *, logger: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.text.splitlines():
            event = json.loads(line)
            if (name is None or event.get("event") == name) and (logger is None or event.get("logger") == logger):
                out.append(event)
        return out

    def audit(self) -> list[dict[str, Any]]:
        return self.events("api_access", logger="audit")


@pytest.fixture
def logs() -> Logs:
    captured = Logs()
    configure_logging(LogSettings(level="info", format="json"), stream=captured.stream)
    return captured


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({"k1": os.urandom(32)}, active_key_id="k1", index_key=os.urandom(32))


@pytest.fixture
async def api_db(
    fresh_db: Callable[[], str], make_settings: Callable[..., Settings], metrics: Metrics
) -> AsyncIterator[Database]:
    """An empty, migrated database for this test alone."""
    settings = make_settings(fresh_db())
    async with open_database(settings.db, metrics=metrics, create=False) as database:
        await migrate(database)
        yield database


@pytest.fixture
def feed(api_db: Database, keyring: Keyring, make_settings: Callable[..., Settings]) -> Feed:
    """The real syncer, loading from a simulator into this test's database."""
    return Feed(api_db, keyring, make_settings)


@pytest.fixture
async def provider(feed: Feed) -> Simulator:
    """A provider simulator of SEEDED customers, already synced once by the real syncer."""
    sim = Simulator(records=SEEDED, seed=11)
    await feed.sync(sim)
    return sim


@pytest.fixture
def customers(provider: Simulator) -> list[dict[str, Any]]:
    """The SEEDED records as the provider sent them (CVV included), by id."""
    return provider.truth()


@dataclass
class Api:
    client: TestClient[Any, Any]
    db: Database
    keyring: Keyring
    metrics: Metrics
    settings: Settings

    async def get(
        self, path: str, role: str | None = None, *, token: str | None = None, **headers: str
    ) -> ClientResponse:
        if role is not None:
            headers["Authorization"] = f"Bearer {TOKENS[role]}"
        elif token is not None:
            headers["Authorization"] = token
        return await self.client.get(path, headers=headers)

    async def json(self, path: str, role: str, status: int = 200) -> Any:
        response = await self.get(path, role)
        assert response.status == status, await response.text()
        return await response.json()


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    make_settings: Callable[..., Settings],
    api_db: Database,
    keyring: Keyring,
    metrics: Metrics,
) -> MakeApi:
    async def make(*, options: ApiOptions | None = None, db: Database | None = None, **env: str) -> Api:
        env.setdefault("API_TOKENS", api_tokens_env())
        settings = make_settings(api_db.name, **env)
        database = db or api_db
        app = build_api_app(
            db=database,
            keyring=keyring,
            settings=settings.api,
            metrics=metrics,
            options=options or ApiOptions(version_ttl_s=0.0),
        )
        client = await aiohttp_client(app)
        return Api(client=client, db=database, keyring=keyring, metrics=metrics, settings=settings)

    return make


@pytest.fixture
async def api(make_api: MakeApi, customers: list[dict[str, Any]], logs: Logs) -> Api:
    """The API in development (demo tokens on) over SEEDED customers, logs captured."""
    return await make_api()
