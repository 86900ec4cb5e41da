"""Last four digits and display masks (property tests over card- and account-like values)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.crypto.masks import display_mask, last4

ASCII_DIGITS = set("0123456789")


def _digits(text: str) -> str:
    return "".join(c for c in text if c in ASCII_DIGITS)


def test_examples() -> None:
    """The provider's format and length are kept; only the last four digits show."""
    assert display_mask("6767-2293-4172-5169") == "***************5169"
    assert display_mask("6767229341725169") == "************5169"
    assert display_mask("4111 1111 1111 11-11") == "***************11-11"
    assert last4("6767-2293-4172-5169") == "5169"
    assert last4("0012345678") == "5678"
    assert last4(" 00 01 ") == "0001"


@pytest.mark.parametrize("value", ["", "123", "abc", "1-2-3"])
def test_fewer_than_four_digits_is_refused(value: str) -> None:
    """Fewer than four digits cannot be masked without revealing everything: ValueError, no value echoed."""
    for fn in (last4, display_mask):
        with pytest.raises(ValueError) as caught:
            fn(value)
        assert value not in str(caught.value) or value == ""


GROUPED_PAN = st.lists(st.text(alphabet="0123456789", min_size=1, max_size=6), min_size=1, max_size=6).flatmap(
    lambda groups: st.sampled_from(["", "-", " "]).map(lambda sep: sep.join(groups))
)
ANY_TEXT = st.text(min_size=0, max_size=40)
# Arbitrary text (any script, other digits included) around at least four ASCII digits.
TEXT_WITH_DIGITS = st.builds(
    lambda pairs, tail: "".join(junk + digit for junk, digit in pairs) + tail,
    st.lists(st.tuples(st.text(max_size=3), st.sampled_from("0123456789")), min_size=4, max_size=19),
    st.text(max_size=3),
)


@given(value=GROUPED_PAN.filter(lambda v: len(_digits(v)) >= 4))
def test_mask_of_a_formatted_number(value: str) -> None:
    """Same length, ends with the real last four (in place), reveals no other digit."""
    mask = display_mask(value)
    assert len(mask) == len(value)
    assert _digits(mask) == _digits(value)[-4:] == last4(value)
    assert mask.replace("-", "").replace(" ", "").endswith(last4(value))
    assert set(mask) <= ASCII_DIGITS | {"*", "-", " "}
    tail_start = len(mask) - len(mask.lstrip("*"))
    assert value[tail_start:] == mask[tail_start:]


@given(value=TEXT_WITH_DIGITS)
def test_mask_of_any_text_never_reveals_more(value: str) -> None:
    """Whatever the provider sends: same length, exactly the last four ASCII digits, no other digit of any script."""
    mask = display_mask(value)
    assert len(mask) == len(value)
    assert _digits(mask) == last4(value)
    assert sum(c.isdigit() or c.isnumeric() for c in mask) == 4


@given(value=ANY_TEXT)
def test_last4_is_the_last_four_ascii_digits(value: str) -> None:
    """last4 is the last four ASCII digits, whatever surrounds them."""
    digits = _digits(value)
    if len(digits) < 4:
        with pytest.raises(ValueError):
            last4(value)
    else:
        assert last4(value) == digits[-4:]
