"""The syncer actor (foundation placeholder: the sync itself lands with the syncer issue)."""

from __future__ import annotations

import asyncio

from daemon.config.sync import SyncSettings
from daemon.db.database import Database
from daemon.observability.logs import get_logger
from daemon.observability.metrics import Metrics

__all__ = ("SyncerActor",)

log = get_logger("customers_mngr.syncer")


class SyncerActor:
    name = "syncer"

    def __init__(self, *, db: Database, settings: SyncSettings, metrics: Metrics) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics

    async def run(self) -> None:
        while True:
            await self._db.fetch_value("SELECT 1")
            log.info("sync_tick")
            await asyncio.sleep(self._settings.interval_s)
