"""Database connection settings and their precedence.

Where the connection comes from, in order (later wins, key by key):
1. `DATABASE_URL` (`mysql://user:password@host:port/dbname`) if set,
   otherwise the predecessor's `DB_HOST`, `DB_PORT`, `DB_USER`, `DB_PASSWORD`, `DB_NAME`;
2. `DB_SECRET`, a JSON object as ECS injects an RDS-managed Secrets Manager
   secret: its `username`, `password`, `host`, `port` and `dbname` keys,
   where present, override what step 1 gave.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import SplitResult, unquote, urlsplit

from daemon.config.env import EnvReader, Var
from daemon.errors import ConfigError

__all__ = ("DB_VARS", "DbSettings", "read_db")

_S = "database"
DATABASE_URL = Var("DATABASE_URL", None, "mysql://user:password@host:port/dbname", secret=True, section=_S)
DB_HOST = Var("DB_HOST", None, "DB host name (used when DATABASE_URL is unset)", section=_S)
DB_PORT = Var("DB_PORT", "3306", "DB port", section=_S)
DB_USER = Var("DB_USER", None, "DB user", section=_S)
DB_PASSWORD = Var("DB_PASSWORD", None, "DB password", secret=True, section=_S)
DB_NAME = Var("DB_NAME", None, "database (schema) name", section=_S)
DB_SECRET = Var(
    "DB_SECRET",
    None,
    "JSON {username, password[, host, port, dbname]} from Secrets Manager; overrides DB_*",
    secret=True,
    section=_S,
)
DB_POOL_MIN = Var("DB_POOL_MIN", "1", "connections the pool keeps open", section=_S)
DB_POOL_MAX = Var("DB_POOL_MAX", "10", "most connections the pool opens", section=_S)
DB_CONNECT_TIMEOUT_S = Var(
    "DB_CONNECT_TIMEOUT_S", "60", "total seconds to wait for the DB at start (then exit 3)", section=_S
)
DB_TLS = Var(
    "DB_TLS",
    "disabled",
    "disabled, required (encrypted, certificate not checked) or verify_identity (CA chain and host name checked)",
    section=_S,
)
DB_TLS_CA = Var(
    "DB_TLS_CA", None, "PEM bundle of the DB's CA (e.g. the RDS global bundle); default: system CAs", section=_S
)
DB_QUERY_TIMEOUT_S = Var("DB_QUERY_TIMEOUT_S", "10", "seconds before one query is abandoned", section=_S)

DB_VARS = (
    DATABASE_URL,
    DB_HOST,
    DB_PORT,
    DB_USER,
    DB_PASSWORD,
    DB_NAME,
    DB_SECRET,
    DB_POOL_MIN,
    DB_POOL_MAX,
    DB_CONNECT_TIMEOUT_S,
    DB_QUERY_TIMEOUT_S,
    DB_TLS,
    DB_TLS_CA,
)

DbTls = Literal["disabled", "required", "verify_identity"]
DB_TLS_MODES: tuple[DbTls, ...] = ("disabled", "required", "verify_identity")

# Schema names are quoted into DDL (CREATE DATABASE), so only plain identifiers pass.
_DB_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_SECRET_KEYS = {"username": "user", "password": "password", "host": "host", "port": "port", "dbname": "name"}


@dataclass(frozen=True, kw_only=True, slots=True)
class DbSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    name: str
    pool_min: int
    pool_max: int
    connect_timeout_s: float
    query_timeout_s: float
    tls: DbTls = "disabled"
    tls_ca: Path | None = None
    source: str  # which variables supplied the connection, for check-config

    def redacted_url(self) -> str:
        return f"mysql://{self.user}:[REDACTED]@{self.host}:{self.port}/{self.name}"


def read_db(env: EnvReader) -> DbSettings:
    parts, source = _from_url(env) if env.is_set(DATABASE_URL) else _from_vars(env)
    if env.is_set(DB_SECRET):
        parts.update(_from_secret(env))
        source += "+DB_SECRET"
    for key, var in (("host", DB_HOST), ("user", DB_USER), ("name", DB_NAME)):
        if not parts.get(key):
            raise ConfigError(
                var.name if source != "DATABASE_URL" else DATABASE_URL.name,
                f"no DB {key} is configured",
                "DATABASE_URL, or DB_HOST, DB_USER and DB_NAME (or DB_SECRET keys)",
            )
    name = str(parts["name"])
    if not _DB_NAME_RE.match(name):
        raise ConfigError(DB_NAME.name, "database name has characters other than A-Z a-z 0-9 _", "a plain identifier")
    pool_min = env.integer(DB_POOL_MIN, low=0, high=100)
    pool_max = env.integer(DB_POOL_MAX, low=1, high=200)
    if pool_max < pool_min:
        raise ConfigError(
            DB_POOL_MAX.name, f"{pool_max} is below DB_POOL_MIN ({pool_min})", "DB_POOL_MAX >= DB_POOL_MIN"
        )
    return DbSettings(
        host=str(parts["host"]),
        port=_port(parts.get("port", 3306), source),
        user=str(parts["user"]),
        password=str(parts.get("password") or ""),
        name=name,
        pool_min=pool_min,
        pool_max=pool_max,
        connect_timeout_s=env.number(DB_CONNECT_TIMEOUT_S, low=0.1, high=3600),
        query_timeout_s=env.number(DB_QUERY_TIMEOUT_S, low=0.1, high=600),
        tls=cast(DbTls, env.choice(DB_TLS, DB_TLS_MODES)),
        tls_ca=_tls_ca(env),
        source=source,
    )


def _tls_ca(env: EnvReader) -> Path | None:
    """The CA bundle must exist now: a typo found at the first connection would be a retry loop."""
    text = env.optional(DB_TLS_CA)
    if text is None:
        return None
    path = Path(text)
    if not path.is_file():
        raise ConfigError(DB_TLS_CA.name, f"{text!r} is not a readable file", "the path of a PEM CA bundle")
    return path


def _from_url(env: EnvReader) -> tuple[dict[str, Any], str]:
    text = env.string(DATABASE_URL)
    expected = "mysql://user:password@host:port/dbname"
    try:
        url: SplitResult = urlsplit(text)
        port = url.port
    except ValueError:
        # urlsplit's messages can echo the URL (and its password): say nothing of it.
        raise ConfigError(DATABASE_URL.name, "is not a valid URL", expected) from None
    if url.scheme not in ("mysql", "mysql+asyncmy"):
        raise ConfigError(DATABASE_URL.name, f"scheme {url.scheme!r} is not supported", expected)
    parts: dict[str, Any] = {
        "host": url.hostname,
        "user": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else "",
        "name": unquote(url.path.lstrip("/")) or None,
    }
    if port is not None:
        parts["port"] = port
    return parts, "DATABASE_URL"


def _from_vars(env: EnvReader) -> tuple[dict[str, Any], str]:
    return {
        "host": env.optional(DB_HOST),
        "port": env.integer(DB_PORT, low=1, high=65535),
        "user": env.optional(DB_USER),
        "password": env.optional(DB_PASSWORD) or "",
        "name": env.optional(DB_NAME),
    }, "DB_*"


def _from_secret(env: EnvReader) -> dict[str, Any]:
    expected = "a JSON object with username and password (and optionally host, port, dbname)"
    secret = env.json(DB_SECRET, expected=expected)
    if not isinstance(secret, dict):
        raise ConfigError(DB_SECRET.name, "is not a JSON object", expected)
    parts: dict[str, Any] = {}
    for key, target in _SECRET_KEYS.items():
        value = secret.get(key)
        if value is None:
            continue
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(DB_SECRET.name, f"key {key!r} is not a string", expected)
        parts[target] = value
    return parts


def _port(value: object, source: str) -> int:
    var = DB_SECRET.name if "DB_SECRET" in source else DB_PORT.name
    try:
        port = int(str(value))
    except ValueError:
        raise ConfigError(var, f"port {value!r} is not an integer", "a port from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise ConfigError(var, f"port {port} is out of range", "a port from 1 to 65535")
    return port
