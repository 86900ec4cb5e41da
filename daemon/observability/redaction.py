"""A structlog processor that keeps secrets and cardholder data out of every log line.

Two nets, because one is not enough:
- by key: the value of any key that names a secret or a sensitive field of
  the policy (password, token, credit_card_num, ip, ...) is replaced,
  at any depth of dicts, lists and tuples;
- by shape: inside any string, runs of 12+ digits (card and account numbers),
  the password of a URL and the credential after `Bearer` are replaced, so a
  value that slipped into an exception message is caught too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from functools import lru_cache
from typing import Any

from daemon.policy import sensitive_field_names

__all__ = ("REDACTED", "is_sensitive_key", "redact_event", "redact_value", "scrub_text")

REDACTED = "[REDACTED]"

_SENSITIVE_EXACT = (
    frozenset(
        {
            "key",
            "keys",
            "pan",
            "cvv",
            "cvc",
            "ccv",
            "dsn",
            "cookie",
            "set_cookie",
            "authorization",
            "password",
            "passwd",
            "pwd",
            "secret",
            "token",
            "api_key",
            "apikey",
            "index_key",
            "encryption_keys",
            "key_material",
            "private_key",
            "database_url",
            "db_secret",
            "auth_header",
            "provider_auth_header",
            "api_tokens",
            "plaintext",
            "raw_record",
        }
    )
    | sensitive_field_names()
)
_SENSITIVE_SUFFIXES = (
    "password",
    "passwd",
    "secret",
    "_token",
    "authorization",
    "api_key",
    "private_key",
    "_key_material",
    "card_num",
    "card_number",
    "account_number",
    "_ccv",
    "_cvv",
)

_PAN_LIKE = re.compile(r"(?<![\w.])(?:\d[ -]?){11,30}\d(?![\w.])")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
# Any of the three, in one pass: most strings of a log line (timestamps, ids, routes) match none,
# and one search is cheaper than three substitutions. Case-insensitivity changes nothing for digits.
_ANY_SHAPE = re.compile("|".join(p.pattern.removeprefix("(?i)") for p in (_URL_PASSWORD, _BEARER, _PAN_LIKE)), re.I)
_LARGE_INT = 10**11  # integers this large could be card or account numbers


@lru_cache(maxsize=4096)  # log keys are a small, code-defined set: each is classified once
def _sensitive_name(key: str) -> bool:
    k = key.lower().replace("-", "_")
    return k in _SENSITIVE_EXACT or k.endswith(_SENSITIVE_SUFFIXES)


def is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and _sensitive_name(key)


def scrub_text(text: str) -> str:
    """Replace card-like digit runs, URL passwords and bearer credentials in free text."""
    if len(text) < 8 or _ANY_SHAPE.search(text) is None:
        return text
    text = _URL_PASSWORD.sub(r"\1" + REDACTED + "@", text)
    text = _BEARER.sub(r"\1 " + REDACTED, text)
    return _PAN_LIKE.sub(REDACTED, text)


def redact_value(value: Any, depth: int = 0) -> Any:
    if depth > 16:  # a pathological structure is dropped, not walked forever
        return REDACTED
    kind = type(value)  # fast paths for the two commonest leaves (exact types: bool is not an int here)
    if kind is int:
        return REDACTED if value >= _LARGE_INT or value <= -_LARGE_INT else value
    if kind is str:
        return scrub_text(value)
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if is_sensitive_key(k) else redact_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, bool | float | None.__class__):
        return value
    if isinstance(value, int):
        return REDACTED if abs(value) >= _LARGE_INT else value  # a card or account number sent as a number
    return scrub_text(str(value))


# Top-level keys already classified: the same answers as is_sensitive_key, without its call and cache
# wrappers (the keys of log events are a small, code-defined set; bounded all the same).
_TOP_KEYS: dict[object, bool] = {}
_TOP_KEYS_MAX = 4096


def redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the event with every sensitive value replaced.

    Exactly `event[key] = REDACTED if is_sensitive_key(key) else redact_value(value)` for every key, with
    redact_value's leaf cases inlined (a request's log line is mostly short strings and small ints, and
    this runs on every line): a value left unchanged is simply not reassigned.
    """
    for key, value in event.items():
        sensitive = _TOP_KEYS.get(key)
        if sensitive is None:
            sensitive = is_sensitive_key(key)
            if len(_TOP_KEYS) < _TOP_KEYS_MAX:
                _TOP_KEYS[key] = sensitive
        if sensitive:
            event[key] = REDACTED
            continue
        kind = type(value)
        if kind is str:
            if len(value) >= 8 and _ANY_SHAPE.search(value) is not None:
                event[key] = scrub_text(value)
        elif kind is int:
            if value >= _LARGE_INT or value <= -_LARGE_INT:
                event[key] = REDACTED
        elif value is not None and kind is not bool and kind is not float:
            event[key] = redact_value(value)
    return event
