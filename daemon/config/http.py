"""Settings of the HTTP surfaces: the customers API and the metrics/probe port."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal, cast

from daemon.config.env import EnvReader, Var
from daemon.errors import ConfigError

__all__ = (
    "DEMO_TOKENS",
    "HTTP_VARS",
    "ROLES",
    "ApiSettings",
    "MetricsSettings",
    "Role",
    "TokenEntry",
    "read_api",
    "read_metrics",
)

Role = Literal["admin", "analyst", "viewer"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
# The predecessor hard-coded these; they are accepted only with APP_ENV=development.
DEMO_TOKENS: dict[str, Role] = {"admin-token": "admin", "analyst-token": "analyst", "viewer-token": "viewer"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

_S = "http"
API_HOST = Var("API_HOST", "0.0.0.0", "address the API listens on", section=_S)  # noqa: S104 - a container's API must listen on all interfaces
API_PORT = Var("API_PORT", "8080", "port the API (and its /metrics, /health, /ready) listens on", section=_S)
API_TOKENS = Var(
    "API_TOKENS",
    None,
    'JSON [{"name", "role": admin|analyst|viewer, "sha256": "<hex of the token>"}] (customers-mngr tokens new)',
    secret=True,
    section=_S,
)
API_REQUEST_TIMEOUT_S = Var("API_REQUEST_TIMEOUT_S", "10", "longest a request may take before a 503", section=_S)
METRICS_HOST = Var("METRICS_HOST", "0.0.0.0", "address of the probe port in syncer mode", section=_S)  # noqa: S104 - scraped from outside the container
METRICS_PORT = Var("METRICS_PORT", "9102", "syncer mode: port serving /metrics, /health, /ready", section=_S)
HTTP_VARS = (API_HOST, API_PORT, API_TOKENS, API_REQUEST_TIMEOUT_S, METRICS_HOST, METRICS_PORT)


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenEntry:
    """One API client: only the SHA-256 of its token is ever configured."""

    name: str
    role: Role
    sha256: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiSettings:
    host: str
    port: int
    tokens: tuple[TokenEntry, ...]
    demo_tokens: bool  # development only: the predecessor's three tokens work too
    request_timeout_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricsSettings:
    host: str
    port: int


def read_api(env: EnvReader, *, production: bool) -> ApiSettings:
    return ApiSettings(
        host=_host(env, API_HOST),
        port=env.integer(API_PORT, low=0, high=65535),
        tokens=_read_tokens(env, production=production),
        demo_tokens=not production,
        request_timeout_s=env.number(API_REQUEST_TIMEOUT_S, low=0.1, high=300),
    )


def _read_tokens(env: EnvReader, *, production: bool) -> tuple[TokenEntry, ...]:
    expected = API_TOKENS.help
    if not env.is_set(API_TOKENS):
        return ()
    items = env.json(API_TOKENS, expected=expected)
    if not isinstance(items, list):
        raise ConfigError(API_TOKENS.name, "is not a JSON list", expected)
    demo_hashes = {hashlib.sha256(token.encode()).hexdigest() for token in DEMO_TOKENS}
    entries: list[TokenEntry] = []
    for index, item in enumerate(items):
        where = f"entry {index}"
        if not isinstance(item, dict):
            raise ConfigError(API_TOKENS.name, f"{where} is not an object", expected)
        name, role, digest = item.get("name"), item.get("role"), item.get("sha256")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(API_TOKENS.name, f"{where} has no valid name", "a name of 1-64 of A-Z a-z 0-9 . _ @ -")
        if role not in ROLES:
            raise ConfigError(
                API_TOKENS.name, f"{where} ({name}) has role {str(role)[:20]!r}", "admin, analyst or viewer"
            )
        if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
            raise ConfigError(
                API_TOKENS.name, f"{where} ({name}) sha256 is not 64 hex digits", "the hex SHA-256 of the token"
            )
        if production and digest.lower() in demo_hashes:
            raise ConfigError(
                API_TOKENS.name,
                f"{where} ({name}) is a predecessor demo token",
                "a token from customers-mngr tokens new",
            )
        if any(e.name == name for e in entries):
            raise ConfigError(API_TOKENS.name, f"name {name!r} appears twice", "unique names")
        entries.append(TokenEntry(name=name, role=cast(Role, role), sha256=bytes.fromhex(digest)))
    return tuple(entries)


def read_metrics(env: EnvReader) -> MetricsSettings:
    return MetricsSettings(host=_host(env, METRICS_HOST), port=env.integer(METRICS_PORT, low=0, high=65535))


def _host(env: EnvReader, var: Var) -> str:
    host = env.string(var, max_len=253)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not all(part.isalnum() or "-" in part for part in host.split(".")):
            raise ConfigError(
                var.name, f"{host!r} is not an address or host name", "e.g. 0.0.0.0 or localhost"
            ) from None
    return host
