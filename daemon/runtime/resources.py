"""What the actors of one process share, opened and closed by the runtime."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from daemon.config import Settings
from daemon.db.database import Database
from daemon.observability.metrics import Metrics

__all__ = ("Resources",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Resources:
    settings: Settings
    metrics: Metrics
    db: Database
    stack: AsyncExitStack  # builders open what their actors need on it; closed in reverse order
