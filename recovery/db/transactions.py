"""One transaction per order, for a whole loop of orders, without Django's per-block toggling.

`transaction.atomic()` on a connection in autocommit mode sends `SET autocommit=0` before
the block and `SET autocommit=1` after its COMMIT: two of the seven server round trips an
order cost. Here autocommit is switched off once for the loop; each order's statements
then form one transaction (InnoDB opens it at the first statement) that ends with exactly
one COMMIT, or one ROLLBACK when anything in it raised. Same guarantee, five round trips.

Inside an atomic block already (a test's transaction, a caller's), each order is a
savepoint of it, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections, transaction

logger = logging.getLogger("recovery.sweep")


class OrderTransactions:
    """Hands out one transaction per order; use through order_transactions()."""

    def __init__(self, using: str, *, explicit: bool) -> None:
        self.using = using
        self.explicit = explicit

    @contextmanager
    def order(self) -> Iterator[None]:
        """The order's transaction: committed when the block ends, rolled back when it raises."""
        if not self.explicit:
            with transaction.atomic(using=self.using):
                yield
            return
        connection = connections[self.using]
        try:
            yield
            connection.commit()  # a Galera certification failure surfaces here
        except BaseException:
            _rollback_quietly(connection)
            raise


@contextmanager
def order_transactions(*, using: str) -> Iterator[OrderTransactions]:
    """Autocommit off for the loop (one round trip each way), restored when it ends."""
    connection = connections[using]
    if connection.in_atomic_block or not connection.get_autocommit():
        yield OrderTransactions(using, explicit=False)
        return
    connection.set_autocommit(False)
    try:
        yield OrderTransactions(using, explicit=True)
    finally:
        try:
            connection.set_autocommit(True)
        except DatabaseError:
            # The connection is gone (the loop stopped for it): drop it, so the next
            # use reconnects in autocommit mode instead of reusing a dead handle.
            _close_quietly(connection)


def _rollback_quietly(connection) -> None:  # noqa: ANN001
    # The error that made us roll back is the one to report; a rollback that fails too
    # (the connection is gone) changes nothing for it: the server discards the transaction.
    try:
        connection.rollback()
    except DatabaseError as exc:
        logger.debug("rollback failed after an error: %s", exc)


def _close_quietly(connection) -> None:  # noqa: ANN001
    try:
        connection.close()
    except DatabaseError as exc:
        logger.debug("closing a lost connection failed: %s", exc)
