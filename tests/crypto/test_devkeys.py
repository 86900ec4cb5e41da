"""Loading the keyring: configured keys, development key file (created once, 0600, reused), production refusal."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from daemon.config import load_settings
from daemon.config.crypto import CryptoSettings
from daemon.config.process import LogSettings
from daemon.crypto.devkeys import load_or_create_dev_keys
from daemon.crypto.keyring import load_keyring
from daemon.errors import ConfigError
from daemon.observability.logs import configure_logging
from tests.crypto.support import INDEX_KEY, KEY_A, KEY_B, env_keys
from tests.support.daemon_proc import DaemonProcess

PLAIN = "6767-2293-4172-5169"


def _dev_settings(path: Path) -> CryptoSettings:
    return CryptoSettings(keys=None, active_key_id=None, index_key=None, dev_key_file=path)


def _capture_logs() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(LogSettings(level="debug", format="json"), stream=stream)
    return stream


def test_dev_key_file_created_once_0600_and_reused(tmp_path: Path) -> None:
    """First load creates the file (mode 0600) with a warning; the second reuses it; old data stays readable."""
    path = tmp_path / "sub" / "dev-keys.json"
    logs = _capture_logs()
    first = load_keyring(_dev_settings(path), production=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    blob = first.encrypt(PLAIN, column="credit_card_num_enc", record_id=1)
    index = first.blind_index(PLAIN)
    content = path.read_bytes()
    second = load_keyring(_dev_settings(path), production=False)
    assert path.read_bytes() == content
    assert second.key_ids == first.key_ids and second.active_key_id == first.active_key_id
    assert second.decrypt(blob, column="credit_card_num_enc", record_id=1) == PLAIN
    assert second.blind_index(PLAIN) == index
    assert [p.name for p in path.parent.iterdir()] == ["dev-keys.json"]  # no temporary file left behind
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    events = [(line["event"], line["level"]) for line in lines]
    assert ("dev_keys_created", "warning") in events and ("dev_keys_loaded", "warning") in events
    data = json.loads(content)
    for secret in [*data["encryption_keys"].values(), data["index_key"]]:
        assert secret not in logs.getvalue()


def test_concurrent_first_starts_agree_on_one_set_of_keys(tmp_path: Path) -> None:
    """Several processes starting at once with no file end up with the same keys (exclusive create)."""
    path = tmp_path / "dev-keys.json"
    results: list[bytes] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        dev = load_or_create_dev_keys(path)
        results.append(next(iter(dev.keys.values())) + dev.index_key)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 6 and len(set(results)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev-keys.json"]


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"format": 1, "encryption_keys": {}, "active_key": "a", "index_key": "x"}',
        b'{"format": 1, "encryption_keys": {"a": "c2hvcnQ="}, "active_key": "a", "index_key": "x"}',
        b'{"format": 1, "encryption_keys": {"a": "' + base64.b64encode(KEY_A) + b'"}, "active_key": "b"}',
    ],
)
def test_a_broken_dev_key_file_stops_the_start(tmp_path: Path, content: bytes) -> None:
    """A damaged file is a config error naming DEV_KEY_FILE; it is never silently replaced."""
    path = tmp_path / "dev-keys.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="DEV_KEY_FILE") as caught:
        load_keyring(_dev_settings(path), production=False)
    assert base64.b64encode(KEY_A).decode() not in str(caught.value)
    assert path.read_bytes() == content


def test_a_permissive_dev_key_file_is_warned_about(tmp_path: Path) -> None:
    """A key file readable by others still loads, with a warning naming the mode."""
    path = tmp_path / "dev-keys.json"
    load_or_create_dev_keys(path)
    os.chmod(path, 0o644)
    logs = _capture_logs()
    load_or_create_dev_keys(path)
    assert "dev_key_file_permissive" in logs.getvalue() and "0o644" in logs.getvalue()


def test_configured_keys_are_used_and_never_logged(tmp_path: Path) -> None:
    """With ENCRYPTION_KEYS set, no file is touched and the log names key ids only."""
    env = {"APP_ENV": "production", **env_keys({"a": KEY_A, "b": KEY_B}, active="b")}
    env["DEV_KEY_FILE"] = str(tmp_path / "never.json")
    env["DATABASE_URL"] = "mysql://root@127.0.0.1:3306/x"
    settings = load_settings(env, mode="api")
    logs = _capture_logs()
    keyring = load_keyring(settings.crypto, production=True)
    assert keyring.key_ids == ("a", "b") and keyring.active_key_id == "b"
    assert not (tmp_path / "never.json").exists()
    text = logs.getvalue()
    assert "keyring_loaded" in text
    for secret in (KEY_A, KEY_B, INDEX_KEY):
        assert base64.b64encode(secret).decode() not in text and secret.hex() not in text


def test_production_never_generates_a_key(tmp_path: Path) -> None:
    """In production, a keyring without configured keys is refused (ConfigError, exit 2), no file written."""
    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS") as caught:
        load_keyring(_dev_settings(tmp_path / "k.json"), production=True)
    assert caught.value.exit_code == 2
    assert not (tmp_path / "k.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["run", "--mode", "all"], ["run", "--mode", "api"]])
def test_production_without_keys_exits_2_with_one_line(tmp_path: Path, command: list[str]) -> None:
    """`run` in production without keys prints one line naming the variable and exits 2, no key file."""
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": "mysql://root@127.0.0.1:1/x",
        "PROVIDER_URL": "https://provider.example/api",
        "DEV_KEY_FILE": str(tmp_path / "k.json"),
    }
    proc = DaemonProcess(command, env)
    assert proc.wait(30) == 2
    lines = proc.output.decode().strip().splitlines()
    assert len(lines) == 1 and "ENCRYPTION_KEYS" in lines[0], lines
    assert not (tmp_path / "k.json").exists()
