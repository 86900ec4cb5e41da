"""When the next run starts: every SYNC_INTERVAL_S, start to start, with ±10% jitter.

Jitter spreads replicas (and a fleet restarted at once) over the interval
instead of hitting the provider in lock-step. A run that takes longer than
its interval is followed by the next one at once — runs are sequential in
one task, so they never overlap.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ("JITTER", "next_delay")

JITTER = 0.10


def next_delay(interval_s: float, elapsed_s: float, rand: Callable[[], float]) -> float:
    """Seconds to wait after a run that took `elapsed_s`; `rand()` is uniform in [0, 1)."""
    jittered = interval_s * (1 - JITTER + 2 * JITTER * rand())
    return max(0.0, jittered - elapsed_s)
