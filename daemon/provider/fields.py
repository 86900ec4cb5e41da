"""Validation and normalization of one provider value, by the policy's `Kind`. Pure, no I/O.

`normalize(field, value, anomalies)` returns the normalized value, None for an
absent one (null, or a string that is empty once stripped), or raises
`Invalid(rule)`. The rule names a problem, never the value. Hostile input
(nested objects, huge strings and numbers, bools, NaN, lone surrogates,
non-ASCII digits) is refused with a rule rather than crashing: every check on a
string is made after a length check, and every conversion of a number to text
after a size check.

Liberal where it is safe: numbers sent as strings and strings as numbers,
surrounding spaces, card and account numbers grouped with dashes or spaces, a
timestamp without an offset (read as UTC). Card numbers that fail Luhn or have
an unusual length are kept and reported as anomalies (provider test data is
not real card data).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Final
from urllib.parse import urlsplit

from daemon.policy import FieldPolicy, Kind

__all__ = (
    "ANOMALY_CARD_LENGTH",
    "ANOMALY_LUHN",
    "COUNT_MAX",
    "ID_MAX",
    "RULES",
    "Invalid",
    "Normalizer",
    "luhn_ok",
    "normalize",
    "normalizer",
)

# Rule names used in quarantine reasons (field, rule).
INVALID_TYPE: Final = "invalid_type"
TOO_LONG: Final = "too_long"
TOO_SHORT: Final = "too_short"
INVALID_TEXT: Final = "invalid_text"
INVALID_NUMBER: Final = "invalid_number"
OUT_OF_RANGE: Final = "out_of_range"
INVALID_DATE: Final = "invalid_date"
INVALID_URL: Final = "invalid_url"
INVALID_IPV4: Final = "invalid_ipv4"
INVALID_DIGITS: Final = "invalid_digits"
MISSING: Final = "missing"
NOT_AN_OBJECT: Final = "not_an_object"
RULES: Final = (
    INVALID_TYPE,
    TOO_LONG,
    TOO_SHORT,
    INVALID_TEXT,
    INVALID_NUMBER,
    OUT_OF_RANGE,
    INVALID_DATE,
    INVALID_URL,
    INVALID_IPV4,
    INVALID_DIGITS,
    MISSING,
    NOT_AN_OBJECT,
)

ANOMALY_LUHN: Final = "card_luhn_failed"
ANOMALY_CARD_LENGTH: Final = "card_unusual_length"

# Ranges of the columns the values land in (see migrations/0001): `id` is BIGINT UNSIGNED,
# capped at the signed maximum so no consumer with a signed 64-bit type can overflow;
# `cantidad_compras_realizadas` is INT UNSIGNED.
ID_MAX: Final = 2**63 - 1
COUNT_MAX: Final = 2**32 - 1
# DATETIME(3) holds years 1000..9999.
YEAR_MIN: Final = 1000
# Card numbers: 12..19 digits is what issuers use (ISO/IEC 7812); others are kept but counted.
# Fewer than 8 digits is refused: the clear last 4 and the mask would give most of it away.
CARD_USUAL_DIGITS: Final = range(12, 20)
CARD_MIN_DIGITS: Final = 8
# An account number must be longer than the 4 digits stored in clear.
ACCOUNT_MIN_DIGITS: Final = 5
# Python ints beyond this many bits are refused before any conversion to text
# (str() of a huge int is quadratic and limited by sys.get_int_max_str_digits).
_MAX_INT_BITS: Final = 128

_ASCII_DIGITS = re.compile(r"[0-9]+")
_GROUPED_DIGITS = re.compile(r"[0-9]+(?:[ -][0-9]+)*")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# Text may hold tabs and line breaks; other control characters and lone surrogates
# (which cannot be encoded as UTF-8, hence not stored) are refused.
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_BAD_URL = re.compile(r"[\x00-\x20\x7f\ud800-\udfff]")
# Fast paths: shapes that the general check (urlsplit, ipaddress, Decimal) is known to accept
# unchanged. Anything else takes the general path, so these only save time, never decide.
# An http(s) URL with a plain ASCII host, no user info or port, then printable ASCII.
_PLAIN_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(?:[/?#][!-~]*)?")
# Four decimal octets 0-255 without leading zeros: exactly what str(IPv4Address(text)) gives back.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
# A decimal with no sign but "-", no leading zero and at most 3 integer digits: format(Decimal(t), "f") == t.
_PLAIN_DECIMAL = re.compile(r"(-?)(0|[1-9][0-9]{0,2})(?:\.([0-9]+))?")
_ALL_ZEROS = re.compile(r"0*")


class Invalid(Exception):
    """A value broke `rule`. Carries the rule only, never the value."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


Normalizer = Callable[[FieldPolicy, object, list[str]], object | None]


def normalize(field: FieldPolicy, value: object, anomalies: list[str]) -> object | None:
    """The normalized value of `field`, None when absent; raises `Invalid`."""
    if value is None:
        return None
    return _BY_KIND[field.kind](field, value, anomalies)


def normalizer(field: FieldPolicy) -> Normalizer:
    """`field`'s normalizer, for a caller that looks it up once (the value must not be None)."""
    return _BY_KIND[field.kind]


_LUHN_DOUBLED: Final = str.maketrans("0123456789", "0246813579")  # digit 2n-9 if n>4 else 2n


def luhn_ok(digits: str) -> bool:
    """Luhn check of ASCII digits: every second digit from the right doubled (its digit sum)."""
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(map(int, digits[-1::-2])) + sum(map(int, doubled))) % 10 == 0


# --- building blocks -------------------------------------------------------------------


def _string(field: FieldPolicy, value: object, *, numbers: bool) -> str | None:
    """The stripped string (None if empty), converting numbers when `numbers` allows."""
    if type(value) is str:  # the usual case first
        text = value.strip()
        if len(text) > field.max_len:
            raise Invalid(TOO_LONG)
        return text or None
    if isinstance(value, bool):  # before int: bool is an int subclass
        raise Invalid(INVALID_TYPE)
    if isinstance(value, int) and numbers:
        if value.bit_length() > _MAX_INT_BITS:
            raise Invalid(TOO_LONG)
        value = str(value)
    elif isinstance(value, float) and numbers:
        if not math.isfinite(value):
            raise Invalid(INVALID_NUMBER)
        value = repr(value)
    if not isinstance(value, str):
        raise Invalid(INVALID_TYPE)
    text = value.strip()
    if not text:
        return None
    if len(text) > field.max_len:
        raise Invalid(TOO_LONG)
    return text


def _integer(field: FieldPolicy, value: object, *, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        raise Invalid(INVALID_TYPE)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise Invalid(INVALID_NUMBER)
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = _string(field, value, numbers=False)
        if text is None:
            return None
        if not _ASCII_DIGITS.fullmatch(text):
            raise Invalid(INVALID_NUMBER)
        number = int(text)
    else:
        raise Invalid(INVALID_TYPE)
    if not low <= number <= high:
        raise Invalid(OUT_OF_RANGE)
    return number


def _digits(field: FieldPolicy, value: object) -> str | None:
    """Digits grouped by single dashes or spaces (or a non-negative JSON integer), kept as sent.

    The provider's grouping is kept: the admin sees the value exactly as the
    provider sent it, and the display mask keeps its format and length. Last 4
    and the blind index look at the digits only.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise Invalid(INVALID_DIGITS)
    if isinstance(value, float):  # a float cannot carry an exact card or account number
        raise Invalid(INVALID_TYPE)
    text = _string(field, value, numbers=True)
    if text is None:
        return None
    if not _GROUPED_DIGITS.fullmatch(text):
        raise Invalid(INVALID_DIGITS)
    return text


# --- one function per Kind --------------------------------------------------------------


def _id(field: FieldPolicy, value: object, _anomalies: list[str]) -> int | None:
    return _integer(field, value, low=1, high=ID_MAX)


def _count(field: FieldPolicy, value: object, _anomalies: list[str]) -> int | None:
    return _integer(field, value, low=0, high=COUNT_MAX)


def _text(field: FieldPolicy, value: object, _anomalies: list[str]) -> str | None:
    text = _string(field, value, numbers=True)
    if text is not None and _BAD_TEXT.search(text):
        raise Invalid(INVALID_TEXT)
    return text


def _timestamp(field: FieldPolicy, value: object, _anomalies: list[str]) -> datetime | None:
    """ISO-8601 → an aware UTC datetime, truncated to the column's milliseconds."""
    text = _string(field, value, numbers=False)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
        zone = parsed.tzinfo
        if zone is None:
            utc = parsed.replace(tzinfo=UTC)
        elif zone is UTC:  # the provider's usual "...Z": already UTC
            utc = parsed
        else:
            utc = parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # month 15, Feb 30, or an offset past year 1/9999
        raise Invalid(INVALID_DATE) from None
    if utc.year < YEAR_MIN:
        raise Invalid(OUT_OF_RANGE)
    extra = utc.microsecond % 1000
    return utc.replace(microsecond=utc.microsecond - extra) if extra else utc


def _url(field: FieldPolicy, value: object, _anomalies: list[str]) -> str | None:
    text = _string(field, value, numbers=False)
    if text is None:
        return None
    if _PLAIN_URL.fullmatch(text):
        return text
    if _BAD_URL.search(text):
        raise Invalid(INVALID_URL)
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        raise Invalid(INVALID_URL) from None
    # http(s) only: a javascript: or data: URL would be served to API callers as is.
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Invalid(INVALID_URL)
    return text


def _ipv4(field: FieldPolicy, value: object, _anomalies: list[str]) -> str | None:
    text = _string(field, value, numbers=False)
    if text is None:
        return None
    if _PLAIN_IPV4.fullmatch(text):
        return text
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise Invalid(INVALID_IPV4) from None


def _coordinate(field: FieldPolicy, value: object, limit: int) -> str | None:
    """A decimal string (or JSON number) within ±limit, as a plain decimal string."""
    text = _string(field, value, numbers=True)
    if text is None:
        return None
    if isinstance(value, str) and (plain := _PLAIN_DECIMAL.fullmatch(text)) is not None:
        sign, whole, fraction = plain.groups()
        no_fraction = fraction is None or _ALL_ZEROS.fullmatch(fraction) is not None
        magnitude = int(whole)
        within = magnitude < limit or (magnitude == limit and no_fraction)
        if within and not (sign and magnitude == 0 and no_fraction):  # "-0" and out of range: below
            return text
    if isinstance(value, str) and not _DECIMAL.fullmatch(text):
        raise Invalid(INVALID_NUMBER)
    try:
        number = Decimal(text)  # a float's repr may use an exponent; the magnitude check bounds it
    except InvalidOperation:
        raise Invalid(INVALID_NUMBER) from None
    if not number.is_finite() or abs(number) > limit:
        raise Invalid(OUT_OF_RANGE)
    if number.is_zero():
        number = abs(number)  # "-0" and "0" are the same place
    normalized = format(number, "f")
    if len(normalized) > field.max_len:
        raise Invalid(TOO_LONG)
    return normalized


def _latitude(field: FieldPolicy, value: object, _anomalies: list[str]) -> str | None:
    return _coordinate(field, value, 90)


def _longitude(field: FieldPolicy, value: object, _anomalies: list[str]) -> str | None:
    return _coordinate(field, value, 180)


def _card(field: FieldPolicy, value: object, anomalies: list[str]) -> str | None:
    text = _digits(field, value)
    if text is None:
        return None
    digits = _only_digits(text)
    if len(digits) < CARD_MIN_DIGITS:
        raise Invalid(TOO_SHORT)
    if len(digits) not in CARD_USUAL_DIGITS:
        anomalies.append(ANOMALY_CARD_LENGTH)
    if not luhn_ok(digits):
        anomalies.append(ANOMALY_LUHN)
    return text


def _account(field: FieldPolicy, value: object, _anomalies: list[str]) -> str | None:
    text = _digits(field, value)
    if text is not None and len(_only_digits(text)) < ACCOUNT_MIN_DIGITS:
        raise Invalid(TOO_SHORT)
    return text


def _only_digits(text: str) -> str:
    return text.replace("-", "").replace(" ", "")


def _never(_field: FieldPolicy, _value: object, _anomalies: list[str]) -> None:
    """The CVV (sad): dropped unread. Nothing about it is validated, kept or reported."""
    return None


_BY_KIND: Final[dict[Kind, Normalizer]] = {
    Kind.ID: _id,
    Kind.TEXT: _text,
    Kind.COUNT: _count,
    Kind.TIMESTAMP: _timestamp,
    Kind.URL: _url,
    Kind.IPV4: _ipv4,
    Kind.LATITUDE: _latitude,
    Kind.LONGITUDE: _longitude,
    Kind.CARD_NUMBER: _card,
    Kind.ACCOUNT_NUMBER: _account,
    Kind.CVV: _never,
}
