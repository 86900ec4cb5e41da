"""redact_event's inlined fast path gives exactly what the plain per-key rule gives, for any event."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.observability.redaction import REDACTED, is_sensitive_key, redact_event, redact_value

PAN = "4111 1111 1111 1111"


def reference(event: dict[Any, Any]) -> dict[Any, Any]:
    """The rule redact_event implements, written plainly."""
    return {key: REDACTED if is_sensitive_key(key) else redact_value(value) for key, value in event.items()}


class Text(str):
    """A str subclass: not the exact type the fast path checks."""


KEYS = st.one_of(
    st.sampled_from(["event", "token", "password", "db_password", "credit_card_num", "ip", "note", "Authorization"]),
    st.text(max_size=12),
    st.integers(-3, 3),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.integers(),
    st.sampled_from([10**11, -(10**11), 10**11 - 1, 2**70]),
    st.text(max_size=40),
    st.sampled_from([PAN, "Bearer abcdefghijklmnop", "mysql://u:secret@h/db", "1234567", "12345678", "/clientes/{id}"]),
    st.builds(Text, st.sampled_from([PAN, "short", "plain text here"])),
    st.binary(max_size=8),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(KEYS, inner, max_size=4),
        st.frozensets(st.integers(0, 5), max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=10))
def test_fast_path_equals_the_plain_rule(event: dict[Any, Any]) -> None:
    """Any event (sensitive and plain keys, int keys, every leaf type, nesting) redacts identically."""
    expected = reference(dict(event))
    got = redact_event(None, "info", dict(event))
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


def test_the_leaf_cases_the_fast_path_inlines() -> None:
    """Short and long strings, PAN-like text, large ints either sign, bools, floats and None."""
    event = {
        "a": "short",
        "b": f"paid with {PAN}",
        "c": 10**11,
        "d": -(10**11),
        "e": 10**11 - 1,
        "f": True,
        "g": 0.5,
        "h": None,
        "password": "x",
        "i": Text(PAN),
    }
    got = redact_event(None, "info", dict(event))
    assert got == reference(event)
    assert got["b"] == f"paid with {REDACTED}" and got["c"] == got["d"] == REDACTED and got["e"] == 10**11 - 1
    assert got["password"] == REDACTED and got["i"] == REDACTED
