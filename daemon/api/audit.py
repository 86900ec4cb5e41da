"""The audit trail of customer-data access (PCI DSS 10.2): one event per request, never dropped.

Every request to an audited endpoint — allowed, denied, rejected or failed —
emits exactly one `api_access` event on the `audit` logger, which
LOG_LEVEL never filters. The event says who (token name, role, client
address), what (endpoint template, method, filters used), when (the log
chain's UTC `timestamp`), the outcome and status, how many records were
returned (their ids when at most 100, as ranges: "1-57,59") and which
classes of sensitive data were revealed. It never carries a
token, an Authorization header, a query string or a field value.

It is also the access-log line of these requests: `duration_ms` and `bytes`
ride on it, so an audited request writes one line rather than an access line
and an audit line (routes that are not audited keep the `http_request` line).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from daemon.observability.logs import AUDIT_LOGGER, get_logger
from daemon.observability.metrics import Metrics

__all__ = ("MAX_AUDITED_IDS", "AuditRecord", "Auditor", "first_forwarded", "id_ranges", "outcome_of")

MAX_AUDITED_IDS: Final = 100
log = get_logger(AUDIT_LOGGER)


@dataclass(slots=True)
class AuditRecord:
    """What a handler learnt about the request, filled in as it goes."""

    token_name: str | None = None
    role: str | None = None
    ids: Sequence[int] = ()
    revealed: Sequence[str] = ()
    filters: list[str] = field(default_factory=list)


def outcome_of(status: int) -> str:
    if status < 400:
        return "allowed"
    if status in (401, 403):
        return "denied"
    if status == 404:
        return "not_found"
    if status < 500:
        return "rejected"
    return "error"


class Auditor:
    __slots__ = ("_children", "_log", "_metrics")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._log = log.bind()  # concrete once (see the access log in middleware.py)
        # Bounded (3 roles x 5 classes): label look-ups lock and hash, so each series is resolved once.
        self._children: dict[tuple[str, str], Any] = {}

    def emit(
        self,
        record: AuditRecord,
        *,
        endpoint: str,
        method: str,
        status: int,
        request_id: str,
        client: str | None,
        forwarded_for: str | None,
        duration_ms: float | None = None,
        size: int | None = None,
    ) -> None:
        """Write the event (`duration_ms`, `size`: the access-log fields, None when no response was sent)."""
        ok = status < 400
        revealed = list(record.revealed) if ok and record.ids else []
        event: dict[str, Any] = {
            "token_name": record.token_name,
            "role": record.role,
            "endpoint": endpoint,
            "method": method,
            "outcome": outcome_of(status),
            "status": status,
            "records": len(record.ids) if ok else 0,
            "revealed": revealed,
            "request_id": request_id,
            "client": client,
            "duration_ms": duration_ms,
            "bytes": size,
        }
        if ok and len(record.ids) <= MAX_AUDITED_IDS:
            event["record_ids"] = id_ranges(record.ids)
        if forwarded_for:
            event["forwarded_for"] = forwarded_for
        if record.filters:
            event["filters"] = record.filters
        self._log.info("api_access", **event)
        role = record.role
        if role in ("viewer", "analyst", "admin"):
            for revealed_class in revealed or ("none",):
                child = self._children.get((role, revealed_class))
                if child is None:
                    child = self._children[(role, revealed_class)] = self._metrics.api_audit_events.labels(
                        role=role, revealed=revealed_class
                    )
                child.inc()


def id_ranges(ids: Sequence[int]) -> str:
    """Ids as compact ranges, "1-57,59,61-100": one short string per event rather than a list
    of ints (a page's ids are mostly consecutive, and every value of an event goes through the
    redaction processor, which costs per element)."""
    parts: list[str] = []
    start = prev = None
    for value in ids:
        if prev is not None and value == prev + 1:
            prev = value
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = value
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)


def first_forwarded(header: str | None) -> str | None:
    """The client address a proxy (the ALB) reports, if it is one; anything else is ignored."""
    if not header:
        return None
    first = header.split(",", 1)[0].strip()
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return None
