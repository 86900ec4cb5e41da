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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from daemon.observability.redaction import REDACTED, scrub_text
from daemon.policy import FIELDS, Classification, FieldPolicy
from daemon.provider.fields import MISSING, NOT_AN_OBJECT, Invalid, normalize

__all__ = ("RECORD", "ParsedRecord", "Rejected", "format_timestamp", "parse_record", "stored_fields")

RECORD: Final = "record"  # the "field" of a reason about the record as a whole

_STORED: Final = tuple(f for f in FIELDS if f.stored)
_KNOWN: Final = frozenset(f.name for f in FIELDS)
_PUBLIC: Final = tuple(f for f in FIELDS if f.classification is Classification.PUBLIC)
_ID: Final = "id"

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
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class ParsedRecord:
    """A valid record: normalized values for every stored field (None when absent), no CVV."""

    id: int
    values: Mapping[str, object]
    unknown_fields: int = 0
    anomalies: tuple[str, ...] = ()

    def canonical(self) -> bytes:
        """Stable bytes of `values` for the keyed content hash: sorted keys, fixed formats."""
        return json.dumps(
            dict(self.values), sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_canonical_default
        ).encode("ascii")


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
    for policy in FIELDS:
        try:
            value = normalize(policy, raw.get(policy.name), anomalies)
        except Invalid as exc:
            reasons.append((policy.name, exc.rule))
            continue
        if policy.name == _ID and value is None:
            reasons.append((_ID, MISSING))
        elif policy.stored:
            values[policy.name] = value
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
        unknown_fields=sum(1 for key in raw if key not in _KNOWN),
        anomalies=tuple(dict.fromkeys(anomalies)),
    )


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
