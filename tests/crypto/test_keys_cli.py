"""`customers-mngr keys ...` as real processes against the real DB: generate, status, rotate killed with -9."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.config.crypto import decode_key
from daemon.db.connect import open_database
from daemon.db.migrate import migrate
from daemon.observability.metrics import Metrics
from tests.conftest import base_env
from tests.crypto.support import INDEX_KEY, KEY_A, KEY_B, check_readable, env_keys, read_all, ring, row_values
from tests.crypto.support import seed_rows as seed
from tests.support.daemon_proc import ROOT, DaemonProcess
from tests.support.mysql import MysqlServer

pytestmark = pytest.mark.slow

ROWS = 3000
N_COLUMNS = 6


def _secrets_absent(output: bytes) -> None:
    """No key (base64 or hex), no seeded PAN or account number, nothing CVV-like in command output."""
    text = output.decode(errors="replace")
    for key in (KEY_A, KEY_B, INDEX_KEY):
        assert base64.b64encode(key).decode() not in text and key.hex() not in text
    for record_id in (1, 2, 1500, ROWS):
        values = row_values(record_id)
        assert values["credit_card_num_enc"] not in text
        assert values["cuenta_numero_enc"] not in text
    assert "ccv" not in text.lower() and "cvv" not in text.lower()


def _run(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, bytes, bytes]:
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **env},
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_generate_prints_usable_keys() -> None:
    """`keys generate --index --json` prints a valid key id, a 32-byte key and an INDEX_KEY; ids can be chosen."""
    code, out, _ = _run(["keys", "generate", "--index", "--json"], {})
    assert code == 0
    data = json.loads(out)
    ((key_id, key),) = data["encryption_keys_entry"].items()
    assert key_id == data["key_id"] and 1 <= len(key_id) <= 16
    assert len(decode_key("ENCRYPTION_KEYS", key)) == 32 and len(decode_key("INDEX_KEY", data["index_key"])) == 32
    code, out, _ = _run(["keys", "generate", "--id", "k2025.q3"], {})
    assert code == 0 and b'"k2025.q3": "' in out and b"INDEX_KEY" not in out
    second = _run(["keys", "generate", "--json"], {})[1]
    assert json.loads(second)["encryption_keys_entry"] != data["encryption_keys_entry"]
    code, out, err = _run(["keys", "generate", "--id", "not a valid id!"], {})
    assert code == 2 and out == b"" and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("action", [["status"], ["rotate"], ["status", "--json"]])
def test_production_without_keys_exits_2(action: list[str], tmp_path: Path) -> None:
    """In production, `keys status|rotate` without keys print one line naming the variable and exit 2."""
    env = {"APP_ENV": "production", "DATABASE_URL": "mysql://root@127.0.0.1:1/x", "DEV_KEY_FILE": str(tmp_path / "k")}
    code, out, err = _run(["keys", *action], env)
    assert code == 2 and out == b""
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "ENCRYPTION_KEYS" in lines[0]
    assert not (tmp_path / "k").exists()


def test_rotate_without_active_key_exits_2(mysql: MysqlServer, session_db: str) -> None:
    """`keys rotate` needs ENCRYPTION_ACTIVE_KEY: one line, exit 2."""
    env = {**base_env(mysql, session_db), **env_keys({"a": KEY_A}, active=None)}
    code, out, err = _run(["keys", "rotate"], env)
    assert code == 2 and out == b""
    assert "ENCRYPTION_ACTIVE_KEY" in err.decode().strip().splitlines()[-1]


def _status(env: dict[str, str]) -> dict[str, object]:
    code, out, err = _run(["keys", "status", "--json"], env)
    assert code == 0, err.decode()[-2000:]
    _secrets_absent(out + err)
    return json.loads(out)  # type: ignore[no-any-return]


def _values(status: dict[str, object]) -> dict[str, int]:
    return {k["key_id"]: k["values"] for k in status["keys"]}  # type: ignore[attr-defined, index]


async def test_rotation_killed_with_sigkill_and_resumed(
    mysql: MysqlServer,
    make_settings: Callable[..., Settings],
    fresh_db: Callable[[], str],
    tmp_path: Path,
) -> None:
    """3000 rows under key a; `keys rotate` is killed -9 twice mid-way and resumed: every value stays readable
    with the ring at every point, batches are all-or-nothing, and at the end key a is unused and removable."""
    name = fresh_db()
    settings = make_settings(name)
    async with open_database(settings.db, metrics=Metrics(), create=False) as db:
        await migrate(db)
        await seed(db, ring("a", a=KEY_A), range(1, ROWS + 1))
        env = {**base_env(mysql, name), **env_keys({"a": KEY_A, "b": KEY_B}, active="b"), "LOG_LEVEL": "debug"}
        ring_ab = ring("b", a=KEY_A, b=KEY_B)
        batch = 50
        assert _values(_status(env)) == {"a": ROWS * N_COLUMNS, "b": 0}

        for attempt in range(2):
            proc = DaemonProcess(
                ["keys", "rotate", "--batch-size", str(batch), "--pause", "0.02"],
                env,
                log_path=tmp_path / f"r{attempt}",
            )
            try:
                # Readable at every point while it runs; kill once some (not all) batches committed.
                deadline = time.monotonic() + 60
                while True:
                    assert proc.proc.poll() is None, "finished before it could be killed"
                    by_key = check_readable(await read_all(db), ring_ab)
                    if by_key.get("b", 0) >= (attempt + 1) * ROWS * N_COLUMNS // 4:
                        break
                    assert time.monotonic() < deadline
                proc.signal(signal.SIGKILL)
                assert proc.wait(10) == -signal.SIGKILL
            finally:
                proc.ensure_dead()
            _secrets_absent(proc.output)
            by_key = check_readable(await read_all(db), ring_ab)  # between the kill and the resume
            assert 0 < by_key["a"] < ROWS * N_COLUMNS and by_key["a"] + by_key["b"] == ROWS * N_COLUMNS
            assert by_key["b"] % (batch * N_COLUMNS) == 0, "a batch is committed whole or not at all"
            assert _values(_status(env)) == by_key

        left = by_key["a"]
        code, out, err = _run(["keys", "rotate", "--batch-size", "500"], env)
        assert code == 0, err.decode()[-2000:]
        _secrets_absent(out + err)
        summary = json.loads(out.decode().strip().splitlines()[-1])
        assert summary["event"] == "keys_rotated" and summary["complete"] is True
        assert summary["total"] == summary["rotated"] == left and summary["failed"] == 0
        assert summary["remaining"] == {"b": ROWS * N_COLUMNS}

        status = _status(env)
        keys = {k["key_id"]: k for k in status["keys"]}  # type: ignore[attr-defined]
        assert keys["a"]["values"] == 0 and keys["a"]["removable"] is True
        assert keys["a"]["columns"] == dict.fromkeys(keys["a"]["columns"], 0)
        assert keys["b"]["active"] is True and keys["b"]["values"] == ROWS * N_COLUMNS
        assert status["to_rotate"] == 0 and status["unreadable_values"] == 0
        # Key a can go: everything reads with b alone, each value still in its own row and column.
        assert check_readable(await read_all(db), ring("b", b=KEY_B)) == {"b": ROWS * N_COLUMNS}
        only_b = {**base_env(mysql, name), **env_keys({"b": KEY_B}, active="b")}
        code, out, _ = _run(["keys", "status"], only_b)
        assert code == 0 and b"active key: b" in out


def test_status_table_and_unreadable_exit_1(
    mysql: MysqlServer, fresh_db: Callable[[], str], make_settings: Callable[..., Settings]
) -> None:
    """`keys status` prints a table; values under a key missing from the ring make it exit 1."""
    name = fresh_db()

    async def prepare() -> None:
        async with open_database(make_settings(name).db, metrics=Metrics(), create=False) as db:
            await migrate(db)
            await seed(db, ring("a", a=KEY_A), range(1, 11))

    asyncio.run(prepare())
    env = {**base_env(mysql, name), **env_keys({"b": KEY_B}, active="b")}
    code, out, err = _run(["keys", "status"], env)
    assert code == 1
    text = out.decode()
    assert "NOT IN RING" in text and "60 UNREADABLE" in text
    _secrets_absent(out + err)
    code, out, _ = _run(["keys", "status"], {**base_env(mysql, name), **env_keys({"a": KEY_A, "b": KEY_B}, active="b")})
    assert code == 0 and "in use: rotate first" in out.decode()


def test_rotate_shows_progress_on_a_terminal(
    mysql: MysqlServer, fresh_db: Callable[[], str], make_settings: Callable[..., Settings]
) -> None:
    """On a terminal (stderr is a tty) `keys rotate` rewrites one line with done/total, percentage and rate."""
    name = fresh_db()

    async def prepare() -> None:
        async with open_database(make_settings(name).db, metrics=Metrics(), create=False) as db:
            await migrate(db)
            await seed(db, ring("a", a=KEY_A), range(1, 31))

    asyncio.run(prepare())
    env = {**base_env(mysql, name), **env_keys({"a": KEY_A, "b": KEY_B}, active="b")}
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "keys", "rotate", "--batch-size", "1", "--pause", "0.05"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", **env},
            stdout=subprocess.PIPE,
            stderr=follower,
        )
        os.close(follower)
        out, _ = proc.communicate(timeout=60)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert re.search(rb"\rkeys rotate: \d+/180 values \(\d+\.\d%\), \d+ values/s, \d+ batches", seen), seen[-500:]
    _secrets_absent(seen + out)
    assert json.loads(out)["rotated"] == 180
