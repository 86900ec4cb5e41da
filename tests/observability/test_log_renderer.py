"""The JSON log renderer (orjson): one valid object per line, whatever the values, redaction still first."""

from __future__ import annotations

import datetime
import io
import json
import logging

from daemon.config.process import LogSettings
from daemon.observability.logs import _json_line, configure_logging, get_logger
from daemon.observability.redaction import REDACTED


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_every_value_type_renders_to_one_json_object_per_line() -> None:
    """Non-ASCII text, floats, None, bools, nested lists, int keys, datetimes and bytes give one parseable line."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=stream)
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    get_logger("test").info(
        "values_logged",
        text="ñandú ☃ \n second line",
        ratio=0.25,
        nothing=None,
        flag=True,
        nested={"ids": [1, 2, (3, 4)], 7: "int key"},
        when=when,
        raw=b"\x00\x01",
        big=10**30,
    )
    (line,) = _lines(stream)
    assert line["text"] == "ñandú ☃ \n second line" and line["ratio"] == 0.25 and line["nothing"] is None
    assert line["flag"] is True and line["nested"] == {"ids": [1, 2, [3, 4]], "7": "int key"}
    assert line["when"] == str(when) and line["raw"] == "<2 bytes>"
    assert line["big"] == REDACTED, "redaction runs before the renderer"
    assert line["event"] == "values_logged" and line["level"] == "info"


def test_what_orjson_refuses_is_rendered_by_the_standard_library() -> None:
    """An integer past 64 bits (which only a processor after redaction could add) still renders."""
    assert json.loads(_json_line({"n": 2**70, "s": "x"}, default=str)) == {"n": 2**70, "s": "x"}
    assert _json_line({"a": 1, "b": [None, "é"]}, default=str) == '{"a":1,"b":[null,"é"]}'


def test_stdlib_records_of_libraries_use_the_same_renderer() -> None:
    """A library's stdlib logging record goes through the same chain and comes out as one JSON object."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=stream)
    logging.getLogger("some.library").warning("library said %s", "hello")
    (line,) = _lines(stream)
    assert line["event"] == "library said hello" and line["level"] == "warning"
