"""Configuration: validated once, one-line errors naming the variable, secrets never echoed."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import ALL_VARS, config_table, describe, load_settings
from daemon.errors import EXIT_CONFIG, ConfigError

ROOT = Path(__file__).resolve().parents[2]
KEY = base64.b64encode(b"k" * 32).decode()
DEV = {"APP_ENV": "development", "DATABASE_URL": "mysql://u:pw@db.example:3307/customers"}
PROD = {
    "APP_ENV": "production",
    "DATABASE_URL": "mysql://u:pw@db.example:3307/customers",
    "ENCRYPTION_KEYS": json.dumps({"k1": KEY}),
    "ENCRYPTION_ACTIVE_KEY": "k1",
    "INDEX_KEY": base64.b64encode(b"i" * 32).decode(),
    "PROVIDER_URL": "https://provider.example/api/v1/usuarios",
}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({**DEV, "DB_POOL_MAX": "abc"}, "DB_POOL_MAX"),
        ({**DEV, "DB_POOL_MIN": "5", "DB_POOL_MAX": "2"}, "DB_POOL_MAX"),
        ({**DEV, "DB_CONNECT_TIMEOUT_S": "-1"}, "DB_CONNECT_TIMEOUT_S"),
        ({**DEV, "DB_QUERY_TIMEOUT_S": "nan"}, "DB_QUERY_TIMEOUT_S"),
        ({**DEV, "APP_ENV": "staging"}, "APP_ENV"),
        ({**DEV, "MODE": "worker"}, "MODE"),
        ({**DEV, "LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
        ({**DEV, "LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({**DEV, "DATABASE_URL": "postgres://u@h/db"}, "DATABASE_URL"),
        ({**DEV, "DATABASE_URL": "mysql://u:pw@h:99999/db"}, "DATABASE_URL"),
        ({"APP_ENV": "development"}, "DB_HOST"),
        ({"APP_ENV": "development", "DB_HOST": "h", "DB_USER": "u"}, "DB_NAME"),
        ({"APP_ENV": "development", "DB_HOST": "h", "DB_USER": "u", "DB_NAME": "x;drop"}, "DB_NAME"),
        ({**DEV, "DB_SECRET": "{not json"}, "DB_SECRET"),
        ({**DEV, "DB_SECRET": "[1, 2]"}, "DB_SECRET"),
        ({**DEV, "DB_SECRET": '{"username": "u", "port": "http"}'}, "DB_SECRET"),
        ({**DEV, "SHUTDOWN_TIMEOUT_S": "0"}, "SHUTDOWN_TIMEOUT_S"),
        ({**DEV, "SUPERVISOR_BACKOFF_INITIAL_S": "10", "SUPERVISOR_BACKOFF_MAX_S": "1"}, "SUPERVISOR_BACKOFF_MAX_S"),
        ({**DEV, "API_PORT": "http"}, "API_PORT"),
        ({**DEV, "PROVIDER_URL": "ftp://x/y"}, "PROVIDER_URL"),
        ({**DEV, "PROVIDER_URL": "https://user:secret@x/y"}, "PROVIDER_URL"),
        ({**PROD, "PROVIDER_URL": ""}, "PROVIDER_URL"),
        ({**PROD, "PROVIDER_TLS_VERIFY": "false"}, "PROVIDER_TLS_VERIFY"),
        ({**PROD, "ENCRYPTION_KEYS": ""}, "ENCRYPTION_KEYS"),
        ({**PROD, "ENCRYPTION_KEYS": '{"k1": "not base64!"}'}, "ENCRYPTION_KEYS"),
        ({**PROD, "ENCRYPTION_KEYS": json.dumps({"k1": base64.b64encode(b"short").decode()})}, "ENCRYPTION_KEYS"),
        ({**PROD, "ENCRYPTION_ACTIVE_KEY": "k9"}, "ENCRYPTION_ACTIVE_KEY"),
        ({**PROD, "INDEX_KEY": ""}, "INDEX_KEY"),
        ({**PROD, "API_TOKENS": '[{"name": "a", "role": "root", "sha256": "00"}]'}, "API_TOKENS"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    """Every bad or missing value raises a one-line ConfigError that names its variable."""
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert caught.value.variable == variable
    assert message.startswith(variable + ":")
    assert "expected" in message and "\n" not in message
    assert "pw" not in message.replace("expected", "")  # the DB password is never echoed


def test_cli_config_error_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI prints one line on stderr naming the variable, and exits 2."""
    monkeypatch.setattr(os, "environ", {**DEV, "DB_PORT": "x", "DATABASE_URL": "", "DB_HOST": "h"})
    assert main(["check-config"]) == EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DB_PORT" in err[0]


def test_unknown_mode_flag_exits_2() -> None:
    """An unknown --mode is refused by the parser with exit 2 before anything starts."""
    proc = subprocess.run(  # noqa: PLW1510 - the return code is the assertion
        [sys.executable, "-m", "daemon", "run", "--mode", "worker"],
        cwd=ROOT,
        env={**DEV, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--mode" in proc.stderr


def test_db_vars_without_url() -> None:
    """The predecessor's DB_* variables work, with DB_PORT defaulting to 3306."""
    settings = load_settings(
        {"APP_ENV": "development", "DB_HOST": "h", "DB_USER": "u", "DB_PASSWORD": "p", "DB_NAME": "n"}
    )
    assert (settings.db.host, settings.db.port, settings.db.user, settings.db.password, settings.db.name) == (
        "h",
        3306,
        "u",
        "p",
        "n",
    )


def test_db_secret_overrides_db_vars_key_by_key() -> None:
    """DB_SECRET's keys override DB_* ones; keys it lacks keep the DB_* values."""
    secret = json.dumps({"username": "rds_user", "password": "rds:p@ss", "port": 3310, "engine": "mysql"})
    settings = load_settings(
        {
            "APP_ENV": "development",
            "DB_HOST": "h",
            "DB_USER": "u",
            "DB_PASSWORD": "p",
            "DB_NAME": "n",
            "DB_SECRET": secret,
        }
    )
    assert (settings.db.host, settings.db.port, settings.db.user, settings.db.password, settings.db.name) == (
        "h",
        3310,
        "rds_user",
        "rds:p@ss",
        "n",
    )
    assert settings.db.source == "DB_*+DB_SECRET"


def test_db_secret_overrides_database_url() -> None:
    """DB_SECRET wins over DATABASE_URL too, including host and dbname when present."""
    secret = json.dumps({"username": "s", "password": "sp", "host": "writer.example", "dbname": "prod"})
    settings = load_settings({**DEV, "DB_SECRET": secret})
    assert (settings.db.host, settings.db.port, settings.db.user, settings.db.password, settings.db.name) == (
        "writer.example",
        3307,
        "s",
        "sp",
        "prod",
    )


def test_database_url_decodes_password() -> None:
    """A percent-encoded password in DATABASE_URL is decoded."""
    settings = load_settings({**DEV, "DATABASE_URL": "mysql://u:p%40ss%3Aw@h/db"})
    assert settings.db.password == "p@ss:w"
    assert settings.db.port == 3306


def test_production_needs_keys_and_accepts_a_full_set() -> None:
    """Production starts with every key configured, and never without."""
    settings = load_settings(PROD)
    assert settings.crypto.keys == {"k1": b"k" * 32}
    assert settings.crypto.active_key_id == "k1"
    with pytest.raises(ConfigError):
        load_settings({k: v for k, v in PROD.items() if k != "INDEX_KEY"})


def test_api_mode_does_not_need_the_active_key() -> None:
    """The API never writes ciphertext, so ENCRYPTION_ACTIVE_KEY is syncer-only."""
    env = {k: v for k, v in PROD.items() if k not in ("ENCRYPTION_ACTIVE_KEY", "PROVIDER_URL")}
    assert load_settings(env, mode="api").crypto.active_key_id is None


def test_demo_tokens_rejected_in_production_config() -> None:
    """A production API_TOKENS listing a predecessor demo token's hash is refused."""
    import hashlib

    tokens = json.dumps([{"name": "old", "role": "admin", "sha256": hashlib.sha256(b"admin-token").hexdigest()}])
    with pytest.raises(ConfigError, match="demo token"):
        load_settings({**PROD, "API_TOKENS": tokens})
    assert load_settings({**DEV, "API_TOKENS": tokens}).api.tokens[0].role == "admin"


def test_describe_redacts_every_secret() -> None:
    """check-config's view contains no password, key or token hash."""
    tokens = json.dumps([{"name": "t", "role": "viewer", "sha256": "ab" * 32}])
    settings = load_settings({**PROD, "API_TOKENS": tokens, "PROVIDER_AUTH_HEADER": "Bearer s3cr3t-value"})
    text = json.dumps(describe(settings))
    for secret in ("pw", KEY, base64.b64encode(b"i" * 32).decode(), "ab" * 32, "s3cr3t-value"):
        assert f'"{secret}"' not in text and secret not in text.replace('"pw', "")
    assert "[REDACTED]" in text


def test_settings_are_immutable() -> None:
    """The settings object cannot be changed after it is built."""
    settings = load_settings(DEV)
    with pytest.raises(AttributeError):
        settings.mode = "api"  # type: ignore[misc]


def test_readme_config_table_is_generated() -> None:
    """The README's configuration table is exactly what the declarations generate."""
    readme = (ROOT / "README.md").read_text()
    assert config_table() in readme, "run `make docs` to regenerate the README tables"
    assert len({var.name for var in ALL_VARS}) == len(ALL_VARS)


def test_import_reads_no_environment() -> None:
    """Importing every daemon module reads no environment variable (and so connects nothing)."""
    code = """
import os, pkgutil, importlib
class Guard(dict):
    def _deny(self, *a, **k): raise AssertionError(f"environment read at import: {a[:1]}")
    __getitem__ = get = __contains__ = keys = items = _deny
# Libraries may read their own variables (structlog: NO_COLOR); only our modules are under test.
import aiohttp.web, asyncmy, structlog, tenacity, prometheus_client, cryptography.hazmat.primitives.ciphers.aead
os.environ = Guard()
import daemon
for mod in pkgutil.walk_packages(daemon.__path__, "daemon."):
    if mod.name != "daemon.__main__":
        importlib.import_module(mod.name)
print("ok")
"""
    proc = subprocess.run(  # noqa: PLW1510 - the return code is the assertion
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"
