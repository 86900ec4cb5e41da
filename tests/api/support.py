"""Customers for the API tests, loaded the way production loads them: the real syncer, the simulator.

`Feed.sync(sim)` serves a provider simulator on loopback and runs one real
sync (provider client, validation, encryption with the Keyring, batched
upserts, data version bump) into the test's database; a simulator built
`from_records=` serves a fixed list (e.g. two customers sharing a card).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from daemon.config import Settings
from daemon.config.sync import SyncSettings
from daemon.crypto.keyring import Keyring
from daemon.db.database import Database
from daemon.observability.metrics import Metrics
from daemon.provider.client import open_provider_session
from daemon.provider.simulator import Simulator
from daemon.syncer.leader import Leadership
from daemon.syncer.runner import SyncRunner
from daemon.syncer.runs import RunSummary
from daemon.syncer.wiring import provider_pages
from tests.support.simulator import provider_env, running_simulator

__all__ = ("TOKENS", "Feed", "api_tokens_env", "bump_version")

# One token per role (and a second admin), configured by hash only.
TOKENS = {
    "viewer": "test-viewer-token-6f1c2a9e0b7d4c3a8e5f",
    "analyst": "test-analyst-token-2b8d4e6f1a3c5e7d9b0a",
    "admin": "test-admin-token-9c7e5a3b1d2f4e6a8c0b",
}


def api_tokens_env(tokens: dict[str, str] | None = None) -> str:
    tokens = TOKENS if tokens is None else tokens
    return json.dumps(
        [
            {"name": f"{role}-client", "role": role, "sha256": hashlib.sha256(token.encode()).hexdigest()}
            for role, token in tokens.items()
        ]
    )


BUMP = "UPDATE data_version SET version = version + 1, changed_at = CURRENT_TIMESTAMP(6) WHERE name = 'customers'"


async def bump_version(db: Database) -> None:
    await db.execute(BUMP)


class Feed:
    """Runs the real syncer from a simulator into one database."""

    def __init__(self, db: Database, keyring: Keyring, settings_for: Callable[..., Settings]) -> None:
        self.db = db
        self.keyring = keyring
        self._settings_for = settings_for

    async def sync(self, sim: Simulator) -> RunSummary:
        metrics = Metrics(CollectorRegistry())
        async with running_simulator(sim):
            settings = self._settings_for(self.db.name, **provider_env(sim.url, PROVIDER_PAGE_SIZE="100"))
            leadership = Leadership(db_settings=settings.db, metrics=metrics)
            async with open_provider_session(settings.provider) as session:
                runner = SyncRunner(
                    db=self.db,
                    keyring=self.keyring,
                    leadership=leadership,
                    pages=provider_pages(session, settings.provider, metrics=metrics, url=None),
                    settings=SyncSettings(interval_s=60, batch_size=100),
                    metrics=metrics,
                )
                try:
                    epoch = await leadership.acquire()
                    assert epoch is not None, "the test database has no other syncer"
                    summary = await runner.run(epoch)
                finally:
                    await leadership.release()
        assert summary.status == "ok", summary
        return summary
