"""Last four digits and display masks, computed once from the plaintext at ingestion.

The API serves these stored values to analysts and never decrypts to do so.
Only ASCII digits count as digits. A mask keeps the provider's length and
shows nothing but the last four digits (and the separators between them):

    "6767-2293-4172-5169"  ->  "***************5169"
    "4111 1111 1111 11-11" ->  "**************11-11"

PCI DSS 3.4.1 allows at most BIN and last four on display; we show the last
four only.
"""

from __future__ import annotations

from typing import Final

__all__ = ("MASK_CHAR", "display_mask", "last4")

MASK_CHAR: Final = "*"
_SHOWN: Final = 4
_DIGITS: Final = frozenset("0123456789")
_SEPARATORS: Final = frozenset("- ")


def _digit_positions(value: str) -> list[int]:
    positions = [i for i, char in enumerate(value) if char in _DIGITS]
    if len(positions) < _SHOWN:
        raise ValueError(f"value has fewer than {_SHOWN} digits")
    return positions


def _ends_with_four_digits(value: str) -> bool:
    """The usual shape (validated card and account numbers end so): the fast path below applies."""
    tail = value[-_SHOWN:]
    return len(tail) == _SHOWN and tail.isascii() and tail.isdigit()


def last4(value: str) -> str:
    """The last four digits of a card or account number (non-digits ignored)."""
    if _ends_with_four_digits(value):
        return value[-_SHOWN:]
    positions = _digit_positions(value)
    return "".join(value[i] for i in positions[-_SHOWN:])


def display_mask(value: str) -> str:
    """Same length as `value`; everything but the last four digits (and separators among them) masked."""
    if _ends_with_four_digits(value):
        return MASK_CHAR * (len(value) - _SHOWN) + value[-_SHOWN:]
    start = _digit_positions(value)[-_SHOWN]
    tail = "".join(c if c in _DIGITS or c in _SEPARATORS else MASK_CHAR for c in value[start:])
    return MASK_CHAR * start + tail
