"""structlog set-up: one JSON object per line on stdout (or colours for a terminal).

Configured once by the CLI. Our own loggers and the stdlib loggers of
libraries (aiohttp, asyncio) go through the same chain, so the redaction
processor sees every line. The `audit` logger is never filtered by
LOG_LEVEL: PCI DSS 10.2 events are not sampled or dropped.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from daemon.config.process import LogSettings
from daemon.observability.redaction import redact_event

__all__ = ("AUDIT_LOGGER", "configure_logging", "get_logger")

AUDIT_LOGGER = "audit"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def get_logger(name: str = "customers_mngr") -> Any:
    """A lazy structlog logger: safe at module level, no side effect at import."""
    return structlog.get_logger(name)


def configure_logging(settings: LogSettings, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one redacting chain to `stream`."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    renderer: Processor
    if settings.format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(stream or sys.stdout))
    else:
        renderer = structlog.processors.JSONRenderer(default=str)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_event,  # after the traceback is rendered to text, so it is scrubbed too
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[settings.level])
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)
    # aiohttp's own access log is replaced by ours (route template, no headers).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
