"""The one immutable settings object, built once at the edge from the environment.

`load_settings(os.environ)` is called by the CLI and nowhere else; everything
below receives the slice it needs by keyword. Loading validates every value
and raises `ConfigError` (exit 2) before any I/O happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from daemon.config.crypto import CRYPTO_VARS, CryptoSettings, read_crypto
from daemon.config.database import DB_VARS, DbSettings, read_db
from daemon.config.env import EnvReader, Var
from daemon.config.http import HTTP_VARS, ApiSettings, MetricsSettings, read_api, read_metrics
from daemon.config.process import (
    PROCESS_VARS,
    AppEnv,
    LogSettings,
    Mode,
    SupervisorSettings,
    read_app_env,
    read_log,
    read_mode,
    read_supervisor,
)
from daemon.config.sync import (
    SYNC_VARS,
    ProviderSettings,
    SimulatorSettings,
    SyncSettings,
    read_provider,
    read_simulator,
    read_sync,
)

__all__ = ("ALL_VARS", "Settings", "config_table", "describe", "load_settings", "read_log_settings")

ALL_VARS: tuple[Var, ...] = PROCESS_VARS + DB_VARS + CRYPTO_VARS + SYNC_VARS + HTTP_VARS


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    app_env: AppEnv
    mode: Mode
    log: LogSettings
    supervisor: SupervisorSettings
    db: DbSettings
    crypto: CryptoSettings
    provider: ProviderSettings
    sync: SyncSettings
    simulator: SimulatorSettings
    api: ApiSettings
    metrics: MetricsSettings

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def writes(self) -> bool:
        """Modes that write (and so migrate) — the api-only mode never runs DDL."""
        return self.mode in ("all", "syncer")


def load_settings(env: Mapping[str, str], *, mode: str | None = None) -> Settings:
    """Validate the whole environment into `Settings`, or raise `ConfigError`."""
    reader = EnvReader(env)
    app_env = read_app_env(reader)
    production = app_env == "production"
    resolved_mode = read_mode(reader, mode)
    writes = resolved_mode in ("all", "syncer")
    return Settings(
        app_env=app_env,
        mode=resolved_mode,
        log=read_log(reader),
        supervisor=read_supervisor(reader),
        db=read_db(reader),
        crypto=read_crypto(reader, production=production, writes=writes),
        provider=read_provider(reader, production=production and writes),
        sync=read_sync(reader),
        simulator=read_simulator(reader),
        api=read_api(reader, production=production),
        metrics=read_metrics(reader),
    )


def read_log_settings(env: Mapping[str, str]) -> LogSettings:
    """Just the log settings, so a config error can itself be logged in the right format."""
    try:
        return read_log(EnvReader(env))
    except Exception:  # a bad LOG_* is reported by load_settings; log plainly meanwhile
        return LogSettings(level="info", format="json")


def describe(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data with every secret redacted."""
    plain: dict[str, Any] = _plain(settings)
    return plain


_SECRET_FIELDS = {"password", "keys", "index_key", "auth_header", "sha256"}


def _plain(value: Any, name: str = "") -> Any:
    if name in _SECRET_FIELDS:
        return None if value is None else "[REDACTED]"
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), f.name) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return "[REDACTED]"
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def config_table() -> str:
    """The README's configuration table, generated from the declarations."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for var in ALL_VARS:
        default = f"`{var.default}`" if var.default is not None else "—"
        secret = " **Secret.**" if var.secret else ""
        lines.append(f"| `{var.name}` | {default} | {var.help.replace('|', '/')}{secret} |")
    return "\n".join(lines)
