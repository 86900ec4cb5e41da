"""Provider-shaped records built by hand, page sources over them, and a fixed test keyring."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from daemon.config.sync import SyncSettings
from daemon.crypto.keyring import Keyring
from daemon.errors import ProviderError
from daemon.observability.metrics import Metrics
from daemon.syncer.leader import Leadership
from daemon.syncer.runner import PageSource, SyncRunner
from daemon.syncer.runs import RunSummary
from tests.support.mysql import MysqlServer
from tests.syncer.conftest import SyncDb

KEY = bytes(range(32))
INDEX_KEY = bytes(range(200, 232))


async def kill_connection(mysql: MysqlServer, connection_id: int | None) -> None:
    """KILL returns before the victim session ends and frees its locks: wait until it is gone."""
    await mysql.aexecute(f"KILL {connection_id}")
    for _ in range(100):
        rows = await mysql.aexecute(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {connection_id}")
        if rows[0][0] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"connection {connection_id} still alive 5 s after KILL")


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 15.0) -> None:
    """Poll `check` until it holds; fail the test past `within_s`."""
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def keyring() -> Keyring:
    return Keyring({"t1": KEY}, active_key_id="t1", index_key=INDEX_KEY)


def card(i: int) -> str:
    """A dashed 16-digit card number unique to record i (not Luhn-valid: test data)."""
    digits = f"52{i:014d}"
    return "-".join(digits[k : k + 4] for k in range(0, 16, 4))


def raw_record(i: int, *, version: int = 0, **overrides: object) -> dict[str, object]:
    """Record i as the provider sends it; `version` changes a public field."""
    record: dict[str, object] = {
        "id": str(i),
        "fec_alta": "2021-07-31T00:11:06.741Z",
        "user_name": f"user{i}",
        "codigo_zip": f"0{1000 + i % 9000}",
        "credit_card_num": card(i),
        "credit_card_ccv": f"CVV{i:06d}X",
        "cuenta_numero": f"00{i:012d}",
        "direccion": f"Calle {i} v{version}",
        "geo_latitud": "-34.603722",
        "geo_longitud": "-58.381592",
        "color_favorito": "azul",
        "foto_dni": f"https://dni.example.test/photo-{i}.jpg",
        "ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",
        "auto": "Ford",
        "auto_modelo": "1",
        "auto_tipo": "SUV",
        "auto_color": "rojo",
        "cantidad_compras_realizadas": i % 50,
        "avatar": f"https://avatar.example.test/{i}.png",
        "fec_birthday": "1990-01-02T03:04:05.000Z",
    }
    record.update(overrides)
    return record


@dataclass(frozen=True)
class FakePage:
    number: int
    records: list[object]


def pages_of(records: Sequence[object], *, page_size: int = 40, fail_after: int | None = None) -> PageSource:
    """A snapshot served in pages; with `fail_after`, the provider fails after that many pages."""

    async def pages() -> AsyncIterator[FakePage]:
        starts = range(0, len(records), page_size) or range(1)  # an empty snapshot is one empty page
        for number, start in enumerate(starts, start=1):
            if fail_after is not None and number > fail_after:
                raise ProviderError(f"provider page {number}: HTTP 503 after retries")
            yield FakePage(number, list(records[start : start + page_size]))

    return pages


class Harness:
    """A leader and its runner over a test database, fed from whatever page source is set."""

    def __init__(self, sdb: SyncDb, *, batch_size: int = 50, metrics: Metrics | None = None) -> None:
        self.sdb = sdb
        self.metrics = metrics or Metrics(CollectorRegistry())
        self.keyring = keyring()
        self.leadership = Leadership(db_settings=sdb.settings.db, metrics=self.metrics)
        self.source: PageSource = pages_of([])
        self.runner = SyncRunner(
            db=sdb.db,
            keyring=self.keyring,
            leadership=self.leadership,
            pages=self._pages,
            settings=SyncSettings(interval_s=60, batch_size=batch_size),
            metrics=self.metrics,
        )

    def _pages(self) -> AsyncIterator[FakePage]:
        return self.source()  # type: ignore[return-value]

    async def sync(
        self, records: Sequence[object], *, page_size: int = 40, fail_after: int | None = None
    ) -> RunSummary:
        self.source = pages_of(records, page_size=page_size, fail_after=fail_after)
        epoch = await self.leadership.acquire()
        assert epoch is not None
        return await self.runner.run(epoch)

    async def close(self) -> None:
        await self.leadership.release()
