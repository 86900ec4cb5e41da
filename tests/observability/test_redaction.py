"""Redaction: no secret or cardholder value reaches a log line, however deeply nested."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from daemon.config.process import LogSettings
from daemon.observability.logs import configure_logging, get_logger
from daemon.observability.redaction import REDACTED, redact_event, scrub_text

PAN = "4111-1111-1111-1111"


def render(**event: object) -> str:
    stream = io.StringIO()
    configure_logging(LogSettings(level="debug", format="json"), stream=stream)
    get_logger("test").info("something_happened", **event)
    return stream.getvalue()


def test_nested_card_number_and_password_never_reach_output() -> None:
    """A PAN and a password nested in dicts and lists are replaced before rendering."""
    line = render(
        request={
            "headers": {"Authorization": "Bearer abcdefghijklmnop"},
            "body": [{"credit_card_num": PAN, "credit_card_ccv": "123", "password": "hunter2"}],
        },
        note=f"failed for card {PAN} at mysql://app:s3cret@db:3306/x",
    )
    assert PAN not in line and "4111111111111111" not in line
    assert "hunter2" not in line and "abcdefghijklmnop" not in line and "s3cret" not in line
    assert '"123"' not in line
    parsed = json.loads(line)
    assert parsed["request"]["body"][0]["password"] == REDACTED
    assert parsed["event"] == "something_happened" and parsed["level"] == "info"
    assert "timestamp" in parsed


def test_stdlib_loggers_are_redacted_too() -> None:
    """Lines from libraries' stdlib loggers pass through the same chain."""
    import logging

    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=stream)
    logging.getLogger("aiohttp.server").error("bad request with card %s", PAN)
    assert PAN not in stream.getvalue() and REDACTED in stream.getvalue()


def test_tracebacks_are_scrubbed() -> None:
    """An exception message holding a card number is scrubbed in the rendered traceback."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="info", format="json"), stream=stream)
    try:
        raise ValueError(f"cannot parse {PAN}")
    except ValueError as exc:
        get_logger("test").error("failed", exc_info=exc)
    out = stream.getvalue()
    assert "Traceback" in out and PAN not in out


def test_harmless_values_are_kept() -> None:
    """Ordinary fields (counts, ids, names of tokens, durations) are not redacted."""
    event = redact_event(
        None,
        "info",
        {
            "event": "x",
            "records": 500,
            "token_name": "ci-bot",
            "key_id": "k1",
            "duration_s": 1.25,
            "route": "/clientes/{id}",
        },
    )
    assert event == {
        "event": "x",
        "records": 500,
        "token_name": "ci-bot",
        "key_id": "k1",
        "duration_s": 1.25,
        "route": "/clientes/{id}",
    }


def test_audit_logger_ignores_log_level() -> None:
    """The audit logger emits at info even when LOG_LEVEL is error."""
    stream = io.StringIO()
    configure_logging(LogSettings(level="error", format="json"), stream=stream)
    get_logger("audit").info("customer_data_access", outcome="allowed")
    get_logger("customers_mngr").info("dropped")
    out = stream.getvalue()
    assert "customer_data_access" in out and "dropped" not in out


@given(
    digits=st.lists(st.integers(0, 9), min_size=13, max_size=19),
    sep=st.sampled_from(["", "-", " "]),
    template=st.sampled_from(["card {} end", "x={};", "({})", "{}", "pan:{}, other"]),
)
def test_any_card_like_number_in_text_is_scrubbed(digits: list[int], sep: str, template: str) -> None:
    """Any 13-19 digit number, grouped or not, embedded in text is removed."""
    number = "".join(str(d) for d in digits)
    grouped = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
    scrubbed = scrub_text(template.format(grouped))
    assert grouped not in scrubbed and number[-4:] + template.format("")[:0] not in scrubbed.replace(REDACTED, "")


def _scrub_every_pattern(text: str) -> str:
    """scrub_text without its one-pass pre-screen: the three substitutions, always."""
    from daemon.observability import redaction

    if len(text) < 8:
        return text
    text = redaction._URL_PASSWORD.sub(r"\1" + REDACTED + "@", text)
    text = redaction._BEARER.sub(r"\1 " + REDACTED, text)
    return redaction._PAN_LIKE.sub(REDACTED, text)


@given(
    st.lists(
        st.sampled_from(["4111", "1111", "-", " ", "x", ".", "@", ":", "//", "mysql://u:pw@", "Bearer ", "TOKEN "])
        | st.text(max_size=12),
        max_size=16,
    ).map("".join)
)
def test_pre_screen_never_skips_a_match(text: str) -> None:
    """The one-pass pre-screen only skips text that none of the three patterns would change."""
    assert scrub_text(text) == _scrub_every_pattern(text)


def test_leaf_fast_paths_keep_the_rules() -> None:
    """Large integers (card-like) are replaced, small ones and bools kept, strings scrubbed, at any depth."""
    event = redact_event(None, "info", {"ids": [1, 10**11, -(10**12), True], "note": f"card {PAN}", "n": 7})
    assert event == {"ids": [1, REDACTED, REDACTED, True], "note": f"card {REDACTED}", "n": 7}
