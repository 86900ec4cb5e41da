"""Settings of the process itself: environment, mode, logs, supervision, shutdown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from daemon.config.env import EnvReader, Var
from daemon.errors import ConfigError

__all__ = (
    "MODES",
    "PROCESS_VARS",
    "AppEnv",
    "LogSettings",
    "Mode",
    "SupervisorSettings",
    "read_app_env",
    "read_log",
    "read_mode",
    "read_supervisor",
)

AppEnv = Literal["production", "development"]
Mode = Literal["all", "api", "syncer"]
MODES: tuple[Mode, ...] = ("all", "api", "syncer")
LogLevel = Literal["debug", "info", "warning", "error"]

_S = "process"
APP_ENV = Var(
    "APP_ENV",
    "production",
    "production or development (development allows generated keys, demo tokens, the simulator)",
    section=_S,
)
MODE = Var("MODE", "all", "all, api or syncer (the --mode flag wins)", section=_S)
LOG_LEVEL = Var("LOG_LEVEL", "info", "debug, info, warning or error", section=_S)
LOG_FORMAT = Var("LOG_FORMAT", "json", "json (one object per line) or console (colours for a terminal)", section=_S)
SHUTDOWN_TIMEOUT_S = Var(
    "SHUTDOWN_TIMEOUT_S", "20", "seconds from SIGTERM to exit; keep below ECS stopTimeout (30)", section=_S
)
SUPERVISOR_MAX_RESTARTS = Var(
    "SUPERVISOR_MAX_RESTARTS", "5", "crashes of one actor tolerated within the window, then exit 1", section=_S
)
SUPERVISOR_WINDOW_S = Var("SUPERVISOR_WINDOW_S", "300", "window over which crashes are counted", section=_S)
SUPERVISOR_BACKOFF_INITIAL_S = Var(
    "SUPERVISOR_BACKOFF_INITIAL_S", "1", "first restart delay (doubles per crash, with jitter)", section=_S
)
SUPERVISOR_BACKOFF_MAX_S = Var("SUPERVISOR_BACKOFF_MAX_S", "30", "longest restart delay", section=_S)

PROCESS_VARS = (
    APP_ENV,
    MODE,
    LOG_LEVEL,
    LOG_FORMAT,
    SHUTDOWN_TIMEOUT_S,
    SUPERVISOR_MAX_RESTARTS,
    SUPERVISOR_WINDOW_S,
    SUPERVISOR_BACKOFF_INITIAL_S,
    SUPERVISOR_BACKOFF_MAX_S,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LogSettings:
    level: LogLevel
    format: Literal["json", "console"]


@dataclass(frozen=True, kw_only=True, slots=True)
class SupervisorSettings:
    max_restarts: int
    window_s: float
    backoff_initial_s: float
    backoff_max_s: float
    shutdown_timeout_s: float


def read_app_env(env: EnvReader) -> AppEnv:
    return cast(AppEnv, env.choice(APP_ENV, ("production", "development")))


def read_mode(env: EnvReader, override: str | None) -> Mode:
    if override is not None:
        if override not in MODES:
            raise ConfigError("--mode", f"{override!r} is not a mode", "one of " + "|".join(MODES))
        return override
    return cast(Mode, env.choice(MODE, MODES))


def read_log(env: EnvReader) -> LogSettings:
    return LogSettings(
        level=cast(LogLevel, env.choice(LOG_LEVEL, ("debug", "info", "warning", "error"))),
        format=cast(Literal["json", "console"], env.choice(LOG_FORMAT, ("json", "console"))),
    )


def read_supervisor(env: EnvReader) -> SupervisorSettings:
    initial = env.number(SUPERVISOR_BACKOFF_INITIAL_S, low=0.0, high=600)
    most = env.number(SUPERVISOR_BACKOFF_MAX_S, low=0.0, high=3600)
    if most < initial:
        raise ConfigError(
            SUPERVISOR_BACKOFF_MAX_S.name,
            f"{most:g} is below SUPERVISOR_BACKOFF_INITIAL_S ({initial:g})",
            "a value >= SUPERVISOR_BACKOFF_INITIAL_S",
        )
    return SupervisorSettings(
        max_restarts=env.integer(SUPERVISOR_MAX_RESTARTS, low=0, high=1000),
        window_s=env.number(SUPERVISOR_WINDOW_S, low=1, high=86400),
        backoff_initial_s=initial,
        backoff_max_s=most,
        # ECS sends SIGKILL 30 s after SIGTERM by default; 29 leaves a second to exit.
        shutdown_timeout_s=env.number(SHUTDOWN_TIMEOUT_S, low=1, high=115),
    )
