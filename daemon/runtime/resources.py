"""What the actors of one process share, opened and closed by the runtime."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

from daemon.config import Settings
from daemon.crypto.keyring import Keyring
from daemon.db.database import Database
from daemon.observability.metrics import Metrics

__all__ = ("Resources",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Resources:
    settings: Settings
    metrics: Metrics
    db: Database
    keyring: Keyring  # loaded once at start; every configured key decrypts, the active one encrypts
    stack: AsyncExitStack  # builders open what their actors need on it; closed in reverse order
