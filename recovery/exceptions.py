"""Errors of tradeops. Each says who handles it."""

from __future__ import annotations


class TradeOpsError(Exception):
    """Base class; never raised itself."""


class UnsafeSchemaOperation(TradeOpsError):
    """DDL was asked for on a database that is neither the demo nor a test database.

    Raised by recovery.db.schema; nothing catches it: it is a programming or operator
    mistake that must stop the run (docs/design.md, "Guarantees": never DDL on the trading tables).
    """


class SchemaNotReady(TradeOpsError):
    """The trading schema lacks a table or column tradeops needs.

    The command turns it into exit code 2 with the fix; the admin shows it.
    """


class SweepLockHeld(TradeOpsError):
    """Another run of the command holds the sweep's named lock.

    The command reports it and exits 0: the other run does the work.
    """


class ConnectionLost(TradeOpsError):
    """The database connection was lost while the sweep was writing orders.

    Raised by services.order_write for one order; the sweep's loop catches it, stops at once
    (no further order is tried) and records it on the result; the command exits 4 with
    one line saying how many orders were recovered before.
    """


def error_line(exc: BaseException) -> str:
    """An exception as one line for cron mail and messages: its first line, or its type."""
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
