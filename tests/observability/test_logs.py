"""Log set-up: loggers bound early follow reconfiguration; library records share the chain."""

from __future__ import annotations

import io
import json
import logging

from daemon.config.process import LogSettings
from daemon.observability.logs import configure_logging, get_logger


def test_bound_logger_follows_new_stream_and_level() -> None:
    """A logger bound before a reconfiguration writes to the new stream at the new level."""
    configure_logging(LogSettings(level="info", format="json"), stream=io.StringIO())
    bound = get_logger("customers_mngr.test").bind(request_id="r1")
    second = io.StringIO()
    configure_logging(LogSettings(level="warning", format="json"), stream=second)
    bound.info("quiet")
    bound.warning("loud")
    lines = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [(e["event"], e["logger"], e["request_id"], e["level"]) for e in lines] == [
        ("loud", "customers_mngr.test", "r1", "warning")
    ]


def test_library_records_are_json_with_their_logger_name() -> None:
    """A stdlib record from a library is rendered as one JSON line with its logger's name."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=stream)
    logging.getLogger("aiohttp.server").warning("something odd")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["event"], line["logger"], line["level"]) == ("something odd", "aiohttp.server", "warning")
    assert "timestamp" in line


def test_console_format_is_readable_text() -> None:
    """LOG_FORMAT=console renders human-readable lines, not JSON."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="console"), stream=stream)
    get_logger("customers_mngr.test").info("hello_there", answer=42)
    text = stream.getvalue()
    assert "hello_there" in text and "answer=42" in text and not text.lstrip().startswith("{")
