"""Reading a Prometheus text exposition back: samples, sums by label, quantiles.

Used by `customers-mngr status` (which scrapes a running daemon) and by the
tests that assert counters moved by exact amounts. Parsing is
prometheus_client's own text parser; this module only indexes the samples.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

__all__ = ("Sample", "Scrape", "ScrapeError", "bucket_bound", "histogram_quantile")


class ScrapeError(ValueError):
    """The body is not a Prometheus text exposition."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


class Scrape:
    """The samples of one scrape, looked up by sample name (with its `_total`/`_bucket`/... suffix)."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self._by_name: dict[str, list[Sample]] = defaultdict(list)
        for sample in samples:
            self._by_name[sample.name].append(sample)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        try:
            samples = [
                Sample(s.name, dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(text)
                for s in family.samples
            ]
        except (ValueError, TypeError, IndexError) as exc:
            raise ScrapeError(f"not a Prometheus exposition ({type(exc).__name__})") from None
        return cls(samples)

    def names(self) -> set[str]:
        return set(self._by_name)

    def has(self, name: str) -> bool:
        return name in self._by_name

    def samples(self, name: str, **match: str) -> list[Sample]:
        """Samples of `name` whose labels include every `match` pair."""
        return [s for s in self._by_name.get(name, ()) if all(s.labels.get(k) == v for k, v in match.items())]

    def total(self, name: str, **match: str) -> float:
        """Sum over the matching samples (0 when there is none)."""
        return math.fsum(s.value for s in self.samples(name, **match))

    def value(self, name: str, **match: str) -> float | None:
        """Like `total`, but None when no sample matches (absent is not zero)."""
        found = self.samples(name, **match)
        return math.fsum(s.value for s in found) if found else None

    def by(self, name: str, label: str, **match: str) -> dict[str, float]:
        """Matching samples summed per value of `label`, in exposition order."""
        out: dict[str, float] = {}
        for s in self.samples(name, **match):
            key = s.labels.get(label, "")
            out[key] = out.get(key, 0.0) + s.value
        return out

    def buckets(self, histogram: str, **match: str) -> dict[float, float]:
        """Cumulative counts of `<histogram>_bucket` by upper bound, summed across other labels."""
        out: dict[float, float] = {}
        for s in self.samples(f"{histogram}_bucket", **match):
            le = float(s.labels["le"])
            out[le] = out.get(le, 0.0) + s.value
        return out

    def quantile(self, q: float, histogram: str, **match: str) -> float | None:
        """Prometheus' histogram_quantile over `<histogram>_bucket`, summed across other labels."""
        return histogram_quantile(q, self.buckets(histogram, **match))


def bucket_bound(q: float, buckets: Mapping[float, float]) -> tuple[float, bool] | None:
    """The upper bound of the bucket holding rank q·count, without interpolation.

    Returns (bound, above): `above` is True when the rank falls in the +Inf
    bucket, and `bound` is then the highest finite bound. None without
    observations. What a human summary should say: "p99 ≤ 25 ms", "p99 > 10 s".
    """
    if not buckets or not 0 <= q <= 1:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0 or not math.isinf(bounds[-1]):
        return None
    rank = q * count
    finite = [b for b in bounds if not math.isinf(b)]
    for bound in finite:
        if buckets[bound] >= rank:
            return bound, False
    return (finite[-1] if finite else math.inf), True


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Linear interpolation within the bucket holding rank q·count, as PromQL does.

    `buckets` maps upper bounds (`le`, +Inf included) to cumulative counts.
    None when there are no observations; the highest finite bound when the
    rank falls in the +Inf bucket (the true value is only known to be above it).
    """
    if not buckets or not 0 <= q <= 1:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0 or not math.isinf(bounds[-1]):
        return None
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= rank:
            if math.isinf(bound):
                return lower_bound
            if cumulative == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (cumulative - lower_count)
        lower_bound, lower_count = bound, cumulative
    return lower_bound
