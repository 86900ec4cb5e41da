"""The fixed figure names, their units and goals (issue #9's table), and the reference figures.

A goal is a conjunction of bounds. A bound compares the figure with another
figure measured in the same run (`reference` times `factor`) or with an
absolute number (`reference` None). Figures without bounds are reported only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ("FIGURES", "OTHER", "REFERENCES", "Bound", "Spec", "evaluate")

Op = Literal[">=", "<="]


@dataclass(frozen=True, slots=True)
class Bound:
    op: Op
    factor: float
    reference: str | None = None  # another figure's name; None: `factor` is an absolute limit

    def threshold(self, values: dict[str, float | None]) -> float | None:
        if self.reference is None:
            return self.factor
        base = values.get(self.reference)
        return None if base is None else base * self.factor

    def holds(self, value: float, values: dict[str, float | None]) -> bool | None:
        limit = self.threshold(values)
        if limit is None:
            return None
        return value >= limit if self.op == ">=" else value <= limit


@dataclass(frozen=True, slots=True)
class Spec:
    unit: str
    goal: str  # as the issue words it
    bounds: tuple[Bound, ...] = ()


# The references (measured in the same command; no goal of their own).
REFERENCES: Final[dict[str, Spec]] = {
    "predecessor_sync_rps": Spec("records/s", "reference: predecessor-like sync, first load"),
    "predecessor_sync_resync_rps": Spec("records/s", "reference: predecessor-like sync, re-sync of the same data"),
    "limit_upsert_rps": Spec("records/s", "reference: DB limit, batched upserts of pre-encrypted rows"),
    "aesgcm_direct_us_per_record": Spec("µs/record", "reference: AESGCM called directly on the same values"),
    "predecessor_api_page_rps": Spec("req/s", "reference: Flask, DB connection per request, page of 100"),
    "bare_api_page_rps": Spec("req/s", "reference: one aiohttp handler + asyncmy pool, page of 100"),
    "bare_api_page_p99_ms": Spec("ms", "reference: bare_api page p99 at 32 connections"),
    "bare_api_item_rps": Spec("req/s", "reference: bare_api single-row SELECT by id"),
}

# Reported for context (no goal): the same start-up without the binary, the RSS at the smaller size.
OTHER: Final[dict[str, Spec]] = {
    "startup_to_health_python_s": Spec("s", "report: `python -m daemon run --mode api`, start to /health 200"),
    "startup_to_ready_python_s": Spec("s", "report: `python -m daemon run --mode api`, start to /ready 200"),
    "sync_first_load_peak_rss_mb": Spec("MB", "report: peak RSS of the first load (the ratio's denominator)"),
    "aesgcm_direct_aad_us_per_record": Spec(
        "µs/record", "report: AESGCM directly with the Keyring's context (table, column, id) as associated data"
    ),
}

_GE, _LE = ">=", "<="

# The daemon's figures: names are fixed (bars read them).
FIGURES: Final[dict[str, Spec]] = {
    "sync_first_load_rps": Spec(
        "records/s",
        "≥ 8x predecessor_sync and ≥ 50% of limit_upsert",
        (Bound(_GE, 8.0, "predecessor_sync_rps"), Bound(_GE, 0.5, "limit_upsert_rps")),
    ),
    "sync_resync_unchanged_rps": Spec(
        "records/s", "≥ 25x predecessor_sync re-sync", (Bound(_GE, 25.0, "predecessor_sync_resync_rps"),)
    ),
    "sync_resync_10pct_changed_rps": Spec(
        "records/s", "≥ 15x predecessor_sync re-sync", (Bound(_GE, 15.0, "predecessor_sync_resync_rps"),)
    ),
    "sync_peak_rss_ratio": Spec("x", "≤ 1.25", (Bound(_LE, 1.25),)),
    "sync_peak_rss_mb": Spec("MB", "report"),
    "crypto_encrypt_us_per_record": Spec(
        "µs/record", "≤ 1.5x AESGCM directly", (Bound(_LE, 1.5, "aesgcm_direct_us_per_record"),)
    ),
    "api_analyst_page_rps": Spec(
        "req/s",
        "≥ 100% of bare_api and ≥ 5x predecessor_api",
        (Bound(_GE, 1.0, "bare_api_page_rps"), Bound(_GE, 5.0, "predecessor_api_page_rps")),
    ),
    "api_admin_page_rps": Spec("req/s", "≥ 60% of bare_api", (Bound(_GE, 0.6, "bare_api_page_rps"),)),
    "api_page_p99_ms": Spec("ms", "≤ bare_api's p99", (Bound(_LE, 1.0, "bare_api_page_p99_ms"),)),
    "api_item_rps": Spec("req/s", "report; ≥ bare_api single row", (Bound(_GE, 1.0, "bare_api_item_rps"),)),
    "api_health_rps": Spec("req/s", "report"),
    "startup_to_health_s": Spec("s", "≤ 1.0 s (built binary)", (Bound(_LE, 1.0),)),
    "startup_to_ready_s": Spec("s", "≤ 1.5 s", (Bound(_LE, 1.5),)),
    "binary_size_mb": Spec("MB", "report"),
    "image_size_mb": Spec("MB", "report; ≤ 60 MB", (Bound(_LE, 60.0),)),
}


def evaluate(spec: Spec, value: float | None, values: dict[str, float | None]) -> tuple[bool | None, dict[str, float]]:
    """(met, ratio to each reference): met is None when not measured, report-only, or a reference is missing."""
    ratios: dict[str, float] = {}
    if value is None:
        return None, ratios
    for bound in spec.bounds:
        base = values.get(bound.reference) if bound.reference else None
        if base:
            ratios[bound.reference or ""] = value / base
    if not spec.bounds:
        return None, ratios
    verdicts = [bound.holds(value, values) for bound in spec.bounds]
    if any(v is False for v in verdicts):
        return False, ratios
    if any(v is None for v in verdicts):
        return None, ratios
    return True, ratios
