"""Query parameters: parsed strictly, refused with a 400 that names the parameter, never its value.

An unknown or repeated parameter is refused too: a typo such as `limt=` or
`include_delete=` must not silently return something other than what was meant.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from multidict import MultiMapping

from daemon.api.cursor import Cursor, CursorCodec, InvalidCursor
from daemon.api.problems import ApiProblem

__all__ = (
    "CLIENTES_PARAMS",
    "DEFAULT_LIMIT",
    "ITEM_PARAMS",
    "MAX_LIMIT",
    "RUNS_DEFAULT_LIMIT",
    "RUNS_MAX_LIMIT",
    "RUNS_PARAMS",
    "PageQuery",
    "card_digits",
    "check_known",
    "parse_bool",
    "parse_id",
    "parse_limit",
    "parse_page_query",
)

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
RUNS_DEFAULT_LIMIT: Final = 20
RUNS_MAX_LIMIT: Final = 100
MAX_ID: Final = 2**64 - 1
CARD_MIN_DIGITS: Final = 12
CARD_MAX_DIGITS: Final = 19

CLIENTES_PARAMS: Final = ("limit", "cursor", "include_deleted", "card_number")
ITEM_PARAMS: Final = ("include_deleted",)
RUNS_PARAMS: Final = ("limit",)

_DIGITS: Final = re.compile(r"^[0-9]{1,20}$")
_CARD: Final = re.compile(r"^[0-9][0-9 -]{10,40}[0-9]$")


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A page request with the cursor's filters merged in."""

    limit: int
    after_id: int
    include_deleted: bool
    card_number: str | None  # digits only; only when given in this request
    card_bidx: bytes | None  # from the cursor, when the walk is a card search


def check_known(query: MultiMapping[str], known: Collection[str]) -> None:
    for name in query:
        if name not in known:
            raise ApiProblem.invalid_param(_safe_name(name), "unknown parameter")
        if len(query.getall(name)) > 1:
            raise ApiProblem.invalid_param(name, "given more than once")


def parse_limit(query: MultiMapping[str], *, default: int, high: int) -> int:
    text = query.get("limit")
    if text is None:
        return default
    if not _DIGITS.match(text) or not 1 <= int(text) <= high:
        raise ApiProblem.invalid_param("limit", f"an integer from 1 to {high}")
    return int(text)


def parse_bool(query: MultiMapping[str], name: str) -> bool | None:
    text = query.get(name)
    if text is None:
        return None
    value = text.lower()
    if value not in ("true", "false"):
        raise ApiProblem.invalid_param(name, "true or false")
    return value == "true"


def parse_id(text: str) -> int:
    if not _DIGITS.match(text) or not 1 <= int(text) <= MAX_ID:
        raise ApiProblem.invalid_param("id", "a positive integer")
    return int(text)


def card_digits(text: str) -> str:
    """The digits of a card number (spaces and dashes allowed between them), or a 400."""
    digits = text.replace(" ", "").replace("-", "")
    if not _CARD.match(text) or not CARD_MIN_DIGITS <= len(digits) <= CARD_MAX_DIGITS:
        raise ApiProblem.invalid_param("card_number", f"{CARD_MIN_DIGITS} to {CARD_MAX_DIGITS} digits")
    return digits


def parse_page_query(query: MultiMapping[str], codec: CursorCodec) -> PageQuery:
    """limit, cursor and the filters; a filter repeated next to a cursor must agree with it."""
    check_known(query, CLIENTES_PARAMS)
    limit = parse_limit(query, default=DEFAULT_LIMIT, high=MAX_LIMIT)
    include_deleted = parse_bool(query, "include_deleted")
    card_text = query.get("card_number")
    card = None if card_text is None else card_digits(card_text)
    cursor_text = query.get("cursor")
    if cursor_text is None:
        return PageQuery(limit, 0, bool(include_deleted), card, None)
    try:
        cursor: Cursor = codec.decode(cursor_text)
    except InvalidCursor:
        raise ApiProblem.invalid_param("cursor", "a cursor from this API's Link header, unchanged") from None
    if include_deleted is not None and include_deleted != cursor.include_deleted:
        raise ApiProblem.invalid_param("include_deleted", "the same as on the page the cursor came from")
    if card is not None and cursor.card_bidx is None:
        raise ApiProblem.invalid_param("card_number", "the same as on the page the cursor came from")
    return PageQuery(limit, cursor.after_id, cursor.include_deleted, card, cursor.card_bidx)


def _safe_name(name: str) -> str:
    """An unknown parameter's name is echoed only when it looks like a name, never like a value."""
    return name if re.fullmatch(r"[a-z_]{1,32}", name) else "(unrecognised)"
