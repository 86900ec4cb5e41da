"""`customers-mngr tokens new|hash`: fresh 256-bit tokens whose entries the API accepts."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable

import pytest

from daemon.cli import main
from daemon.config import Settings
from tests.api.conftest import MakeApi


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what fixtures printed before
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_new_token_is_random_256_bits_and_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Two tokens differ, each carries at least 256 random bits, and the text output shows it once."""
    code, out, _ = _run(capsys, "tokens", "new", "--role", "analyst", "--name", "ci-reader", "--json")
    assert code == 0
    first = json.loads(out)
    token = first["token"]
    assert token.startswith("cmgr_")
    raw = base64.urlsafe_b64decode(token[5:] + "=" * (-len(token[5:]) % 4))
    assert len(raw) >= 32
    assert first["entry"]["name"] == "ci-reader" and first["entry"]["role"] == "analyst"
    second = json.loads(_run(capsys, "tokens", "new", "--role", "analyst", "--name", "x", "--json")[1])
    assert second["token"] != token and second["entry"]["sha256"] != first["entry"]["sha256"]
    code, text, _ = _run(capsys, "tokens", "new", "--role", "viewer", "--name", "dash")
    assert code == 0 and text.count("cmgr_") == 1 and '"sha256"' in text


async def test_issued_entry_is_accepted_by_config_and_the_api(
    capsys: pytest.CaptureFixture[str], make_api: MakeApi, make_settings: Callable[..., Settings], customers: object
) -> None:
    """The printed entry is valid API_TOKENS configuration (production too) and the token authenticates."""
    issued = json.loads(_run(capsys, "tokens", "new", "--role", "admin", "--name", "ops@team", "--json")[1])
    api_tokens = json.dumps([issued["entry"]])
    settings = make_settings(
        APP_ENV="production",
        MODE="api",
        API_TOKENS=api_tokens,
        ENCRYPTION_KEYS=json.dumps({"p": base64.b64encode(bytes(32)).decode()}),
        INDEX_KEY=base64.b64encode(bytes(range(32))).decode(),
    )
    assert [t.name for t in settings.api.tokens] == ["ops@team"]
    api = await make_api(API_TOKENS=api_tokens)
    assert (await api.get("/sync/runs", token=f"Bearer {issued['token']}")).status == 200
    assert (await api.get("/sync/runs", token=issued["token"][:-1])).status == 401


def test_hash_reads_stdin_and_refuses_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tokens hash` prints the entry of a token given on stdin; a bad name or a demo token is exit 2."""
    monkeypatch.setattr("sys.stdin", io.StringIO("abc\n"))
    code, out, _ = _run(capsys, "tokens", "hash", "--role", "viewer", "--name", "legacy")
    assert code == 0
    assert json.loads(out)["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    monkeypatch.setattr("sys.stdin", io.StringIO("admin-token\n"))
    assert _run(capsys, "tokens", "hash", "--role", "admin", "--name", "legacy")[0] == 2
    assert _run(capsys, "tokens", "new", "--role", "admin", "--name", "has space")[0] == 2
