"""SQL literals for the syncer's bulk statements, written without the driver's per-value escaping.

Why: a 500-row upsert has ~13,000 parameters, and the driver's `%s` substitution
(escape each value by type, then `%` into the statement text) cost more CPU per
record than validating it. These literals are built from the value's type alone,
in forms whose meaning does not depend on the session's SQL mode:

    None                 NULL
    int (not bool)       its decimal digits
    bytes                X'<hex>'                   (a binary string)
    str, plain           '<text>'                   no quote, backslash, NUL, CR, LF or ^Z in it
    str, any other       _utf8mb4 X'<hex of UTF-8>' (never escaped: hex digits only)
    datetime (naive)     'YYYY-MM-DD HH:MM:SS[.ffffff]'

So a value can never end its literal early, with or without NO_BACKSLASH_ESCAPES
or ANSI_QUOTES: a quoted string holds none of the characters that could close
or escape it, and everything else is digits or hex digits. Any other type is a
TypeError (a bug, never silently converted). The connection's character set is
utf8mb4 (daemon.db.connect), in which no byte of a multi-byte character is an
ASCII quote or backslash. Tests round-trip hostile values through the server
in both SQL modes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Final

__all__ = ("literal", "row_literal")

# Characters that may not appear inside a plain quoted literal: quotes, backslash, NUL, CR, LF,
# ^Z (MySQL's escape set) plus lone surrogates (not UTF-8: refused by the hex path with an error).
_NOT_PLAIN: Final = re.compile("['\"\\\\\x00\r\n\x1a\ud800-\udfff]")


def literal(value: object) -> str:
    """The SQL literal of one value (see the module docstring for the forms)."""
    if type(value) is str:
        return _text(value)
    if type(value) is bytes:
        return "X'" + value.hex() + "'"
    if value is None:
        return "NULL"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is datetime:
        return _datetime(value)
    raise TypeError(f"no SQL literal for a value of type {type(value).__name__}")


def row_literal(row: Iterable[object]) -> str:
    """`(v1, v2, ...)` for one row."""
    return "(" + ",".join([literal(value) for value in row]) + ")"


def _text(value: str) -> str:
    if _NOT_PLAIN.search(value) is None:
        return "'" + value + "'"
    # Hex of the UTF-8 bytes under an explicit character set: no escaping to get right.
    # A lone surrogate raises UnicodeEncodeError here (validation refuses them before).
    return "_utf8mb4 X'" + value.encode("utf-8").hex() + "'"


def _datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        raise TypeError("an aware datetime has no DATETIME literal: convert it to naive UTC first")
    return "'" + value.isoformat(" ") + "'"
