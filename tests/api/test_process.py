"""The real daemon in api mode: serves customers by role, and drains an in-flight request on SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncmy
import pytest

from daemon.config import Settings
from daemon.crypto.keyring import Keyring
from daemon.db.database import Database
from daemon.provider.simulator import Simulator
from tests.api.support import TOKENS, Feed, api_tokens_env
from tests.conftest import base_env
from tests.support.daemon_proc import DaemonProcess, free_port, http_get, wait_http
from tests.support.mysql import MysqlServer

pytestmark = pytest.mark.slow

KEY = os.urandom(32)
INDEX = os.urandom(32)


@pytest.fixture
def env_feed(api_db: Database, make_settings: Callable[..., Settings]) -> Feed:
    """The real syncer writing with the keys the daemon under test is configured with."""
    return Feed(api_db, Keyring({"e1": KEY}, active_key_id="e1", index_key=INDEX), make_settings)


def _env(mysql: MysqlServer, database: str, port: int, tmp_path: Path) -> dict[str, str]:
    return {
        **base_env(mysql, database),
        "API_PORT": str(port),
        "API_TOKENS": api_tokens_env(),
        "ENCRYPTION_KEYS": json.dumps({"e1": base64.b64encode(KEY).decode()}),
        "INDEX_KEY": base64.b64encode(INDEX).decode(),
        "DEV_KEY_FILE": str(tmp_path / "unused.json"),
        "SHUTDOWN_TIMEOUT_S": "15",
    }


async def test_api_mode_serves_roles_and_stops_cleanly(
    mysql: MysqlServer, api_db: Database, env_feed: Feed, tmp_path: Path
) -> None:
    """`run --mode api` answers /clientes per role from data the syncer wrote, and exits 0 on SIGTERM."""
    sim = Simulator(records=30, seed=4)
    await env_feed.sync(sim)
    records = sim.truth()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with DaemonProcess(["run", "--mode", "api"], _env(mysql, api_db.name, port, tmp_path)) as daemon:
        wait_http(f"{base}/ready", proc=daemon.proc)
        status, body = http_get(f"{base}/clientes?limit=5", headers={"Authorization": f"Bearer {TOKENS['admin']}"})
        assert status == 200
        admin: list[dict[str, Any]] = json.loads(body)
        assert admin[0]["credit_card_num"] == records[0]["credit_card_num"]
        assert admin[0]["cuenta_numero"] == records[0]["cuenta_numero"]
        status, body = http_get(f"{base}/clientes/1", headers={"Authorization": TOKENS["viewer"]})
        assert status == 200 and set(json.loads(body)) == {"id", "user_name", "direccion", "avatar"}
        assert http_get(f"{base}/clientes")[0] == 401
        assert http_get(f"{base}/openapi.json")[0] == 200
        code, seconds = daemon.stop()
    assert code == 0 and seconds < 15
    assert b"api_access" in daemon.output and TOKENS["admin"].encode() not in daemon.output


async def test_sigterm_drains_an_in_flight_request(
    mysql: MysqlServer, api_db: Database, env_feed: Feed, tmp_path: Path
) -> None:
    """A request still waiting on the DB when SIGTERM arrives is answered (200) before the process exits 0."""
    await env_feed.sync(Simulator(records=5, seed=4))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with DaemonProcess(["run", "--mode", "api"], _env(mysql, api_db.name, port, tmp_path)) as daemon:
        wait_http(f"{base}/ready", proc=daemon.proc)
        locker = await asyncmy.connect(
            host=mysql.host, port=mysql.port, user=mysql.user, password=mysql.password, db=api_db.name
        )
        result: dict[str, Any] = {}

        def call() -> None:
            headers = {"Authorization": f"Bearer {TOKENS['admin']}"}
            result["response"] = http_get(f"{base}/clientes", headers=headers, timeout=20)

        try:
            async with locker.cursor() as cur:
                await cur.execute("LOCK TABLES customers WRITE")
            caller = threading.Thread(target=call)
            caller.start()
            await asyncio.sleep(0.5)  # the request is now blocked on the table lock
            daemon.signal()
            await asyncio.sleep(1.0)
            assert daemon.proc.poll() is None, "the process waits for the in-flight request"
            async with locker.cursor() as cur:
                await cur.execute("UNLOCK TABLES")
        finally:
            locker.close()
        caller.join(20)
        code = daemon.wait(20)
    status, body = result["response"]
    assert status == 200 and len(json.loads(body)) == 5
    assert code == 0
