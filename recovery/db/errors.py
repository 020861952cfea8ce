"""MySQL/MariaDB errors by what they mean for one order's write.

- CONFLICT: another writer won. The transaction was rolled back; the order may since have
  been recovered by another sweep (re-read it) or may be tried once more.
  1213 deadlock, which is also what a Galera node answers when certification refused the
  commit or a replicated write set aborted ours; 1205 lock wait timeout; 1180 an error
  during COMMIT (Galera reports some certification failures this way).
- CONNECTION: the database is gone for this run (server down, lost connection, cannot
  connect, a cluster node that left the primary component). No later statement can succeed;
  the sweep stops at once.
- OTHER: a real failure of this write (a unique clash, a bad value).
"""

from __future__ import annotations

from enum import StrEnum

from django.db import DatabaseError, InterfaceError, connections

from recovery.db.routers import database_label

CONFLICT_CODES = frozenset({1180, 1205, 1213})
CONNECTION_CODES = frozenset(
    {
        1047,  # WSREP has not yet prepared node for application use (node out of the cluster)
        1053,  # server shutdown in progress
        1077,  # normal shutdown
        1927,  # connection was killed
        2002,  # can't connect through the socket
        2003,  # can't connect to the server
        2005,  # unknown server host
        2006,  # server has gone away
        2013,  # lost connection during query (also a read/write timeout)
        2026,  # SSL connection error
        2055,  # lost connection at a reading/writing stage
        4031,  # disconnected by the server for inactivity
    }
)


class ErrorKind(StrEnum):
    CONFLICT = "conflict"
    CONNECTION = "connection"
    OTHER = "other"


def error_code(exc: BaseException) -> int | None:
    """The MySQL error number of a driver error (Django keeps the driver's args)."""
    args = getattr(exc, "args", ())
    return args[0] if args and type(args[0]) is int else None


def error_kind(exc: DatabaseError) -> ErrorKind:
    code = error_code(exc)
    if code in CONFLICT_CODES:
        return ErrorKind.CONFLICT
    if code in CONNECTION_CODES:
        return ErrorKind.CONNECTION
    # The driver raises InterfaceError (code 0 or none) for a connection that is closed
    # already; Django raises it for "connection already closed".
    if isinstance(exc, InterfaceError):
        return ErrorKind.CONNECTION
    return ErrorKind.OTHER


def error_text(exc: BaseException) -> str:
    """`MySQL 2013: Lost connection to server during query`, or the first line of anything else."""
    code, args = error_code(exc), getattr(exc, "args", ())
    if code is not None and len(args) > 1:
        return f"MySQL {code}: {args[1]}"
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def failed_databases() -> str:
    """The databases whose connection raised an error that may have made it unusable.

    Django flags such a connection (errors_occurred) until it is checked again at the next
    request or run, so this names the database that was down without asking it again.
    """
    labels = [database_label(c.alias) for c in connections.all(initialized_only=True) if c.errors_occurred]
    return " and ".join(labels) or "the database"
