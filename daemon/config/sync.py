"""Provider, schedule and development-simulator settings for the syncer."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from daemon.config.env import EnvReader, Var
from daemon.errors import ConfigError

__all__ = (
    "SYNC_VARS",
    "ProviderSettings",
    "SimulatorSettings",
    "SyncSettings",
    "read_provider",
    "read_simulator",
    "read_sync",
)

PRODUCTION_PROVIDER_URL = "https://62433a7fd126926d0c5d296b.mockapi.io/api/v1/usuarios"

_S = "syncer"
PROVIDER_URL = Var(
    "PROVIDER_URL",
    None,
    "provider list URL (production: the mockapi.io resource); unset in development = built-in simulator",
    section=_S,
)
PROVIDER_PAGE_SIZE = Var(
    "PROVIDER_PAGE_SIZE", "100", "records per page (?page=N&limit=M); 0 = one request, no pagination", section=_S
)
PROVIDER_TIMEOUT_S = Var("PROVIDER_TIMEOUT_S", "15", "connect and total timeout of one request", section=_S)
PROVIDER_MAX_RETRIES = Var(
    "PROVIDER_MAX_RETRIES", "5", "retries of one page (5xx, 408, 429, timeouts, bad body)", section=_S
)
PROVIDER_RETRY_MAX_WAIT_S = Var("PROVIDER_RETRY_MAX_WAIT_S", "60", "cap on one wait, Retry-After included", section=_S)
PROVIDER_AUTH_HEADER = Var(
    "PROVIDER_AUTH_HEADER", None, "optional Authorization header value sent to the provider", secret=True, section=_S
)
PROVIDER_MAX_PAGES = Var("PROVIDER_MAX_PAGES", "10000", "guard against a provider that never ends", section=_S)
PROVIDER_MAX_BODY_BYTES = Var("PROVIDER_MAX_BODY_BYTES", "16777216", "largest accepted response body", section=_S)
PROVIDER_TLS_VERIFY = Var(
    "PROVIDER_TLS_VERIFY", "true", "verify the provider's TLS certificate (always on in production)", section=_S
)
SYNC_INTERVAL_S = Var("SYNC_INTERVAL_S", "300", "seconds between sync runs (±10% jitter)", section=_S)
SYNC_BATCH_SIZE = Var("SYNC_BATCH_SIZE", "500", "rows per upsert statement and transaction", section=_S)
SIMULATOR_RECORDS = Var("SIMULATOR_RECORDS", "1000", "development: records the built-in simulator serves", section=_S)
SIMULATOR_SEED = Var("SIMULATOR_SEED", "1", "development: seed of the built-in simulator's data", section=_S)

SYNC_VARS = (
    PROVIDER_URL,
    PROVIDER_PAGE_SIZE,
    PROVIDER_TIMEOUT_S,
    PROVIDER_MAX_RETRIES,
    PROVIDER_RETRY_MAX_WAIT_S,
    PROVIDER_AUTH_HEADER,
    PROVIDER_MAX_PAGES,
    PROVIDER_MAX_BODY_BYTES,
    PROVIDER_TLS_VERIFY,
    SYNC_INTERVAL_S,
    SYNC_BATCH_SIZE,
    SIMULATOR_RECORDS,
    SIMULATOR_SEED,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ProviderSettings:
    url: str | None  # None: development without PROVIDER_URL → the built-in simulator
    page_size: int
    timeout_s: float
    max_retries: int
    retry_max_wait_s: float
    auth_header: str | None = field(repr=False)
    max_pages: int
    max_body_bytes: int
    tls_verify: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class SyncSettings:
    interval_s: float
    batch_size: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SimulatorSettings:
    records: int
    seed: int


def read_provider(env: EnvReader, *, production: bool) -> ProviderSettings:
    url = env.optional(PROVIDER_URL)
    if url is None and production:
        raise ConfigError(
            PROVIDER_URL.name, "is not set in production", f"the provider's URL, e.g. {PRODUCTION_PROVIDER_URL}"
        )
    if url is not None:
        _check_url(url, production=production)
    verify = env.boolean(PROVIDER_TLS_VERIFY)
    if production and not verify:
        raise ConfigError(
            PROVIDER_TLS_VERIFY.name, "is false in production", "true (TLS verification is always on in production)"
        )
    return ProviderSettings(
        url=url,
        page_size=env.integer(PROVIDER_PAGE_SIZE, low=0, high=10_000),
        timeout_s=env.number(PROVIDER_TIMEOUT_S, low=0.1, high=600),
        max_retries=env.integer(PROVIDER_MAX_RETRIES, low=0, high=100),
        retry_max_wait_s=env.number(PROVIDER_RETRY_MAX_WAIT_S, low=0, high=3600),
        auth_header=env.optional(PROVIDER_AUTH_HEADER),
        max_pages=env.integer(PROVIDER_MAX_PAGES, low=1, high=10_000_000),
        max_body_bytes=env.integer(PROVIDER_MAX_BODY_BYTES, low=1024, high=1 << 30),
        tls_verify=verify,
    )


def read_sync(env: EnvReader) -> SyncSettings:
    return SyncSettings(
        interval_s=env.number(SYNC_INTERVAL_S, low=0.1, high=7 * 86400),
        batch_size=env.integer(SYNC_BATCH_SIZE, low=1, high=10_000),
    )


def read_simulator(env: EnvReader) -> SimulatorSettings:
    return SimulatorSettings(
        records=env.integer(SIMULATOR_RECORDS, low=0, high=10_000_000),
        seed=env.integer(SIMULATOR_SEED, low=0, high=2**31),
    )


def _check_url(url: str, *, production: bool) -> None:
    expected = "an http:// or https:// URL"
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(PROVIDER_URL.name, "is not a valid URL", expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(PROVIDER_URL.name, "is not an http(s) URL with a host", expected)
    if parts.username or parts.password:
        raise ConfigError(PROVIDER_URL.name, "carries credentials", "credentials in PROVIDER_AUTH_HEADER, not the URL")
    if production and parts.scheme != "https":  # verification means nothing without TLS
        raise ConfigError(PROVIDER_URL.name, "is not https in production", "an https:// URL")
