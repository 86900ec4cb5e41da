"""One provider record → a `ParsedRecord` to store, or a `Rejected` to quarantine. Pure, no I/O.

Driven by the field policy (`daemon.policy.FIELDS`): each field's `Kind` picks
its normalizer (`fields.py`), its `max_len` bounds it, its classification
decides what may be kept of a rejected record. The CVV (classification sad) is
dropped here, before anything else sees the record.

Every problem of a record is reported, not only the first, as (field, rule)
pairs; the value itself never appears in a reason. A rejected record keeps only
its public fields (bounded in size, card-like digit runs scrubbed) and the
names of unknown keys: its pci, financial, sad *and* pii fields are removed, so
the quarantine table never holds a card, account, CVV, IP or DNI photo URL.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring_ascii  # the C encoder json.dumps itself uses
from types import MappingProxyType
from typing import Final

from daemon.observability.redaction import REDACTED, scrub_text
from daemon.policy import FIELDS, Classification, FieldPolicy
from daemon.provider.fields import ID_MAX, MISSING, NOT_AN_OBJECT, Invalid, normalizer

__all__ = (
    "NORMALIZATION_VERSION",
    "RECORD",
    "ParsedRecord",
    "Rejected",
    "format_timestamp",
    "parse_record",
    "quick_id",
    "raw_digest_input",
    "stored_fields",
)

RECORD: Final = "record"  # the "field" of a reason about the record as a whole

_STORED: Final = tuple(f for f in FIELDS if f.stored)
_KNOWN: Final = frozenset(f.name for f in FIELDS)
_PUBLIC: Final = tuple(f for f in FIELDS if f.classification is Classification.PUBLIC)
_ID: Final = "id"
# Each field's normalizer, looked up once: (name, normalizer, policy, stored).
_PLAN: Final = tuple((f.name, normalizer(f), f, f.stored) for f in FIELDS)
# What a raw record's keyed hash covers: the values of every field the policy knows except the
# sad ones (the CVV), in policy order. Nothing else of a record changes what parse_record makes
# of it (unknown keys are ignored, key order and a missing key vs null make no difference). The
# CVV is never part of it: a keyed hash of a record holding a 3-digit CVV would let whoever
# holds the key recover it by trying all 1,000 values; PCI DSS 3.3.1 forbids keeping it in any form.
_HASHED: Final = tuple(f.name for f in FIELDS if f.classification is not Classification.SAD)
_HASHED_VALUES: Final = operator.itemgetter(*_HASHED)
# Bump when parse_record's output for some input changes (a normalization rule, a new field):
# the sync skips a record whose raw hash matches the stored one without parsing it, which is
# only right while the same raw record still normalizes to what was stored. It is part of the
# raw hash, so a bump makes the next sync parse (and compare) every record once.
NORMALIZATION_VERSION: Final = 1
_RAW_PREFIX: Final = f"customers-mngr raw v{NORMALIZATION_VERSION} repr\x00".encode("ascii")
# The canonical form's keys, sorted, each with its JSON prefix ('{"key":' then ',"key":').
_CANONICAL_KEYS: Final = tuple(sorted(f.name for f in _STORED))
_CANONICAL_PREFIXES: Final = tuple(
    ("{" if i == 0 else ",") + encode_basestring_ascii(name) + ":" for i, name in enumerate(_CANONICAL_KEYS)
)

# Bounds of what a rejected record keeps: it is evidence for an operator, not a copy.
_QUARANTINE_SCAN_CHARS: Final = 4096  # scrubbed before the final cut, so a cut never splits a PAN
_QUARANTINE_VALUE_CHARS: Final = 256
_QUARANTINE_UNKNOWN_KEYS: Final = 20
_QUARANTINE_KEY_CHARS: Final = 64
_PROVIDER_ID_CHARS: Final = 64
_SMALL_INT: Final = 10**11  # larger integers could be card or account numbers: replaced
UNKNOWN_KEYS: Final = "_unknown_fields"
# Any run of 12+ digits (optionally separated), whatever its length: the log scrubber
# stops at 31 digits, but a quarantined value must not carry a PAN inside a longer run.
_DIGIT_RUN: Final = re.compile(r"[0-9](?:[ -]?[0-9]){11,}")


def stored_fields() -> tuple[FieldPolicy, ...]:
    """The policy fields a `ParsedRecord.values` holds, in policy order."""
    return _STORED


def format_timestamp(value: datetime) -> str:
    """The one text form of a normalized timestamp: UTC, milliseconds, `Z`."""
    if value.year >= 1000:  # isoformat's fields, truncated to milliseconds, are strftime's then
        return value.isoformat(timespec="milliseconds")[:23] + "Z"
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """A valid record: normalized values for every stored field (None when absent), no CVV."""

    id: int
    values: Mapping[str, object]
    unknown_fields: int = 0
    anomalies: tuple[str, ...] = ()

    def canonical(self) -> bytes:
        """Stable bytes of `values` for the keyed content hash: sorted keys, fixed formats.

        The compact, key-sorted, ASCII JSON of `values` (timestamps as `format_timestamp`),
        written out directly for the value types a record holds; anything else goes through
        json.dumps. Both give the same bytes (a test checks it): stored hashes stay valid.
        """
        values = self.values
        if len(values) != len(_CANONICAL_KEYS):
            return _canonical_json(values)
        parts: list[str] = []
        for prefix, name in zip(_CANONICAL_PREFIXES, _CANONICAL_KEYS, strict=True):
            value = values.get(name, _ABSENT)
            if type(value) is str:
                parts.append(prefix + encode_basestring_ascii(value))
            elif value is None:
                parts.append(prefix + "null")
            elif type(value) is int:
                parts.append(prefix + int.__repr__(value))
            elif type(value) is datetime:
                parts.append(prefix + '"' + format_timestamp(value) + '"')
            else:  # another type, or a key missing
                return _canonical_json(values)
        parts.append("}")
        return "".join(parts).encode("ascii")


@dataclass(frozen=True, slots=True)
class Rejected:
    """An invalid record: every (field, rule) broken, and what may safely be kept of it."""

    provider_id: str | None
    reasons: tuple[tuple[str, str], ...]
    record: Mapping[str, object] = field(default_factory=dict)
    id: int | None = None  # the normalized id when the id itself was valid (the record may still be stored)


def parse_record(raw: object) -> ParsedRecord | Rejected:
    """Validate and normalize one provider record. Never raises on any input."""
    if not isinstance(raw, Mapping):
        return Rejected(provider_id=None, reasons=((RECORD, NOT_AN_OBJECT),), record={})
    values: dict[str, object] = {}
    reasons: list[tuple[str, str]] = []
    anomalies: list[str] = []
    get = raw.get
    for name, normalize, policy, stored in _PLAN:
        value = get(name)
        if value is not None:
            try:
                value = normalize(policy, value, anomalies)
            except Invalid as exc:
                reasons.append((name, exc.rule))
                continue
        if value is None and name == _ID:
            reasons.append((_ID, MISSING))
        elif stored:
            values[name] = value
    record_id = values.get(_ID)
    if reasons or not isinstance(record_id, int):  # the second test only narrows the type: no id is a reason
        return Rejected(
            provider_id=_provider_id(raw.get(_ID), valid=isinstance(record_id, int)),
            reasons=tuple(reasons),
            record=_quarantine_copy(raw),
            id=record_id if isinstance(record_id, int) else None,
        )
    return ParsedRecord(
        id=record_id,
        values=MappingProxyType(values),
        unknown_fields=unknown_field_count(raw),
        anomalies=tuple(dict.fromkeys(anomalies)) if anomalies else (),
    )


def unknown_field_count(raw: Mapping[object, object]) -> int:
    """How many of a record's keys the policy does not know (ignored, counted)."""
    keys = raw.keys()
    return 0 if keys <= _KNOWN else len(keys - _KNOWN)


def quick_id(raw: Mapping[str, object]) -> int | None:
    """The record's id when it has the usual shape (ASCII digits, or an integer) and is in range.

    What parse_record would make of such an id, without parsing the record; None for any
    other shape (spaces, signs, floats, a missing id...), which then takes the full parse.
    """
    value = raw.get(_ID)
    if type(value) is str:
        if not (0 < len(value) <= 19 and value.isascii() and value.isdigit()):
            return None
        number = int(value)
    elif type(value) is int:
        number = value
    else:
        return None
    return number if 1 <= number <= ID_MAX else None


def raw_digest_input(raw: Mapping[str, object]) -> bytes | None:
    """The bytes a raw record's keyed hash is taken of: its hashed fields' values, never the CVV.

    The `repr` of the tuple of values as decoded from the provider's JSON (str, int, float,
    bool, None, lists and dicts): deterministic and injective for those types — a string is
    quoted and escaped, `1`, `"1"` and `1.0` differ — and several times cheaper than JSON.
    None when it cannot be built (the record then always takes the full parse).
    """
    try:
        values = _HASHED_VALUES(raw)
    except KeyError:  # a field absent: the same as null to the parser
        values = tuple(map(raw.get, _HASHED))
    try:
        text = repr(values)
    except (ValueError, RecursionError):  # an int too long for text, or nesting too deep
        return None
    return _RAW_PREFIX + text.encode("utf-8")  # repr escapes lone surrogates: always encodable


_ABSENT: Final = object()


def _canonical_json(values: Mapping[str, object]) -> bytes:
    return json.dumps(
        dict(values), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_canonical_default
    ).encode("ascii")


def _canonical_default(value: object) -> object:
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError(f"not canonicalizable: {type(value).__name__}")


# --- what a rejected record may keep -----------------------------------------------------


def _provider_id(value: object, *, valid: bool) -> str | None:
    """The id as sent, bounded; an invalid one is scrubbed (it could be anything)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        text = str(value) if value.bit_length() <= 256 else None
    elif isinstance(value, float | str):
        text = str(value)
    else:
        return None
    if text is None:
        return None
    text = _safe_text(text.strip(), _PROVIDER_ID_CHARS) if not valid else text.strip()[:_PROVIDER_ID_CHARS]
    return text or None


def _quarantine_copy(raw: Mapping[object, object]) -> dict[str, object]:
    """Public fields only (bounded, scrubbed) plus the names of unknown keys."""
    kept: dict[str, object] = {}
    for policy in _PUBLIC:
        if policy.name in raw:
            kept[policy.name] = _safe_value(raw[policy.name])
    unknown = [key for key in raw if key not in _KNOWN]
    if unknown:
        names = sorted(_safe_text(str(key), _QUARANTINE_KEY_CHARS) for key in unknown)
        kept[UNKNOWN_KEYS] = names[:_QUARANTINE_UNKNOWN_KEYS]
    return kept


def _safe_value(value: object) -> object:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < _SMALL_INT else REDACTED
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # NaN is not valid JSON for the column
    if isinstance(value, str):
        return _safe_text(value, _QUARANTINE_VALUE_CHARS)
    if isinstance(value, Mapping):
        return "<object>"
    if isinstance(value, list | tuple):
        return "<array>"
    return f"<{type(value).__name__}>"


def _safe_text(text: str, limit: int) -> str:
    """Bounded, encodable (lone surrogates escaped) and with card-like digit runs scrubbed."""
    head = text[:_QUARANTINE_SCAN_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")
    cleaned = _DIGIT_RUN.sub(REDACTED, scrub_text(head))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
