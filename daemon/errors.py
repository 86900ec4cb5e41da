"""The daemon's small error taxonomy and the exit codes they map to.

Every failure a user can cause or an operator must act on is one of these,
so the CLI can print one line and exit with a documented code instead of a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = (
    "EXIT_CONFIG",
    "EXIT_DB_UNAVAILABLE",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "ActorEscalated",
    "ConfigError",
    "CryptoError",
    "DaemonError",
    "DatabaseError",
    "DatabaseUnavailable",
    "ProviderError",
)

EXIT_OK = 0
EXIT_FAILURE = 1  # a run failed, or an actor exhausted its restart budget
EXIT_CONFIG = 2  # bad or missing configuration; nothing was started
EXIT_DB_UNAVAILABLE = 3  # the database never became reachable within DB_CONNECT_TIMEOUT_S
EXIT_PARTIAL = 4  # `sync --once` finished with quarantined records or skipped deletions


class DaemonError(Exception):
    """Base of every expected failure; `str()` is a one-line, secret-free message."""

    exit_code = EXIT_FAILURE


class ConfigError(DaemonError):
    """A variable is missing or invalid. Raised before any I/O."""

    exit_code = EXIT_CONFIG

    def __init__(self, variable: str, problem: str, expected: str) -> None:
        self.variable = variable
        self.problem = problem
        self.expected = expected
        super().__init__(f"{variable}: {problem}; expected {expected}")


class DatabaseUnavailable(DaemonError):
    """The DB cannot be reached right now (refused, lost, timed out, read-only).

    Transient by nature: callers retry at the edge or answer 503.
    """

    exit_code = EXIT_DB_UNAVAILABLE


class DatabaseError(DaemonError):
    """The DB answered with an error that retrying will not fix (rights, SQL)."""

    exit_code = EXIT_DB_UNAVAILABLE


class CryptoError(DaemonError):
    """A value cannot be decrypted or a key is unusable. Never carries plaintext."""


class ProviderError(DaemonError):
    """The provider could not be read (after retries) or sent something unusable."""


class ActorEscalated(DaemonError):
    """An actor crashed more often than its restart budget allows."""

    def __init__(self, actor: str, crashes: int, window_s: float) -> None:
        self.actor = actor
        super().__init__(f"actor {actor} crashed {crashes} times within {window_s:g}s; giving up")
