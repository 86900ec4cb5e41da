"""Mapping driver exceptions onto the daemon's taxonomy, without leaking SQL or values.

Server messages can quote the values of a statement (a duplicate key, a bad
value), so only the error number and a fixed description travel upwards.
"""

from __future__ import annotations

from typing import Literal

from asyncmy import errors as mysql_errors

from daemon.errors import DatabaseError, DatabaseUnavailable

__all__ = ("ErrorKind", "classify", "errno_of", "to_daemon_error")

ErrorKind = Literal["unavailable", "timeout", "read_only", "integrity", "other"]

# Errors that mean "this connection or server cannot serve now" — retry or 503.
UNAVAILABLE_ERRNOS = frozenset(
    {
        1040,  # too many connections
        1053,  # server shutdown in progress
        1205,  # lock wait timeout
        1213,  # deadlock: the transaction was rolled back, retry it
        1927,  # connection was killed
        2002,
        2003,
        2005,
        2006,
        2013,
        2014,
        2055,  # client: cannot connect / gone away / lost
        4031,  # MySQL 8: disconnected by the server for inactivity
    }
)
# Aurora after a failover: the old writer is read-only. Treat like a lost connection.
READ_ONLY_ERRNOS = frozenset({1290, 1836})
UNKNOWN_DATABASE = 1049
ACCESS_DENIED_ERRNOS = frozenset({1044, 1045, 1142, 1143, 1227})


def errno_of(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def classify(exc: BaseException) -> ErrorKind:
    if isinstance(exc, TimeoutError):
        return "timeout"
    code = errno_of(exc)
    if code in READ_ONLY_ERRNOS:
        return "read_only"
    if isinstance(exc, OSError | ConnectionError) or code in UNAVAILABLE_ERRNOS:
        return "unavailable"
    if isinstance(exc, mysql_errors.InterfaceError | mysql_errors.OperationalError) and (code is None or code >= 2000):
        return "unavailable"
    if isinstance(exc, mysql_errors.IntegrityError):
        return "integrity"
    return "other"


def to_daemon_error(exc: BaseException, *, doing: str) -> DatabaseError | DatabaseUnavailable:
    """A one-line, value-free error for `exc` raised while `doing` something."""
    kind = classify(exc)
    code = errno_of(exc)
    tag = f" (MySQL error {code})" if code else ""
    if kind == "timeout":
        return DatabaseUnavailable(f"{doing}: timed out")
    if kind == "read_only":
        return DatabaseUnavailable(f"{doing}: the server is read-only (failover?){tag}")
    if kind == "unavailable":
        reason = type(exc).__name__ if code is None else "connection lost or refused"
        return DatabaseUnavailable(f"{doing}: {reason}{tag}")
    if code in ACCESS_DENIED_ERRNOS:
        return DatabaseError(f"{doing}: access denied for the configured DB user{tag}")
    if code == UNKNOWN_DATABASE:
        return DatabaseUnavailable(f"{doing}: the database does not exist yet{tag}")
    return DatabaseError(f"{doing}: {type(exc).__name__}{tag}")
