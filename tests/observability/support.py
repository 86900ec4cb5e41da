"""What the daemon exposes, for checking the dashboard and the alert rules against it."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from daemon.observability.metrics import Metrics
from daemon.observability.scrape import Scrape
from tests.observability.promql import Selector

__all__ = ("ACTORS", "TARGET_LABELS", "Exposition", "exposition")

ACTORS = ("api", "syncer", "probe")
# Labels Prometheus adds to every scraped series (prometheus.yml adds `service`).
TARGET_LABELS = frozenset({"job", "instance", "service"})
# Series Prometheus makes itself for each target.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


@dataclass(frozen=True)
class Exposition:
    declared: Scrape  # a fresh process: the initialised series only (label values from fixed sets)
    full: Scrape  # every labelled metric given one series: every sample name and label name

    def problems(self, selector: Selector) -> list[str]:
        """Why `selector` would never match anything the daemon exposes (empty when it may)."""
        name = selector.metric
        if name in SYNTHETIC:
            return []
        if not self.full.has(name):
            return [f"{name}: no such series in the exposition"]
        labels = {k for s in self.full.samples(name) for k in s.labels}
        out = []
        for m in selector.matchers:
            if m.label == "__name__" or m.label in TARGET_LABELS:
                continue
            if m.label not in labels:
                out.append(f"{name}: no label {m.label!r} (has {sorted(labels)})")
                continue
            known = {s.labels[m.label] for s in self.declared.samples(name) if m.label in s.labels}
            if m.op == "=" and known and m.value not in known:
                out.append(f"{name}: {m.label}={m.value!r} is never exposed (values: {sorted(known)})")
        return out


def exposition() -> Exposition:
    declared = Metrics(CollectorRegistry())
    for actor in ACTORS:
        declared.init_actor(actor)
    full = Metrics(CollectorRegistry())
    for value in vars(full).values():
        if isinstance(value, MetricWrapperBase) and value._labelnames:
            value.labels(**{label: "x" for label in value._labelnames})
    return Exposition(
        declared=Scrape.parse(generate_latest(declared.registry).decode()),
        full=Scrape.parse(generate_latest(full.registry).decode()),
    )
