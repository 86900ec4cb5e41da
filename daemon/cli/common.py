"""What every command shares: loading settings, logging, and turning failures into exit codes.

A command handler receives the parsed arguments and the environment
snapshot, and returns an exit code. Expected failures (`DaemonError`) become
one line — on stderr for configuration (logging is not set up yet), as one
error log line otherwise — never a traceback unless LOG_LEVEL=debug.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from daemon.config import Settings, load_settings, read_log_settings
from daemon.errors import EXIT_CONFIG, ConfigError, DaemonError
from daemon.observability.logs import configure_logging, get_logger

__all__ = ("Handler", "fail", "load_or_exit", "run_async")

Handler = Callable[[argparse.Namespace, Mapping[str, str]], int]
log = get_logger("customers_mngr.cli")


class _ConfigExit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def fail(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    print(f"customers-mngr: {message}", file=sys.stderr, flush=True)


def load_or_exit(env: Mapping[str, str], *, mode: str | None = None) -> Settings:
    """Load settings and configure logging, or print the config error and raise SystemExit(2)."""
    try:
        settings = load_settings(env, mode=mode)
    except ConfigError as exc:
        fail(f"configuration error: {exc}")
        raise SystemExit(EXIT_CONFIG) from None
    configure_logging(settings.log)
    return settings


def run_async(main: Coroutine[Any, Any, int], *, env: Mapping[str, str]) -> int:
    """Run a command's coroutine; map DaemonError to its exit code with one log line."""
    try:
        return asyncio.run(main)
    except DaemonError as exc:
        debug = read_log_settings(env).level == "debug"
        log.error(
            "command_failed", error=str(exc), error_type=type(exc).__name__, **({"exc_info": exc} if debug else {})
        )
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
