"""One order's transaction, and what happens when another writer wins or the database goes away.

- Another writer won (a deadlock, a lock wait timeout, a Galera certification failure, a
  conditional cancel that matched nothing): after the rollback the order is read again.
  No longer a candidate: `changed_concurrently`, saying what it is now. Still a candidate:
  tried once more. Still failing with the order NEW: `write_failed`.
- Any other database error: the order is read again too (an order another sweep recovered
  is not a failure); `write_failed` when it is still a candidate, without a retry.
- The replacement's client id is another row's already (the unique key refused the
  insert, the order is still a candidate): tried once more as a cancel without a
  replacement, `replacement_id_taken`; retrying every minute could never succeed.
- The connection is lost: ConnectionLost, and the sweep stops.
"""

from __future__ import annotations

from django.db import DatabaseError

from recovery import selectors
from recovery.db.errors import ErrorKind, error_kind, error_text
from recovery.db.transactions import OrderTransactions
from recovery.exceptions import ConnectionLost
from recovery.services.order import (
    NothingMatched,
    SweepContext,
    changed_outcome,
    order_recover,
    replacement_client_id_for,
)
from recovery.sweep.decisions import Action, Decision, OrderSnapshot, Reason, candidate_problem
from recovery.sweep.results import OrderOutcome

TRIES = 2  # the first, and one more while the order is still a candidate after a conflict
MSG_NOTHING_MATCHED = "the conditional cancel matched no row twice, with the order still NEW"
DETAIL_MAX = 500
MSG_ID_TAKEN = "{client_order_id} is order {order_id} already ({status}): cancelled without a replacement"


def order_write(
    snapshot: OrderSnapshot, decision: Decision, *, context: SweepContext, transactions: OrderTransactions
) -> OrderOutcome:
    """Recover one order in its own transaction; never raises for one order's failure."""
    failure = MSG_NOTHING_MATCHED
    taken: str | None = None
    for _ in range(TRIES):
        kind = ErrorKind.CONFLICT
        try:
            with transactions.order():
                return order_recover(snapshot, decision, context=context, replacement_taken=taken)
        except NothingMatched:
            failure = MSG_NOTHING_MATCHED
        except DatabaseError as exc:
            kind = error_kind(exc)
            if kind is ErrorKind.CONNECTION:
                raise ConnectionLost(error_text(exc)) from exc
            failure = f"{type(exc).__name__}: {exc}"
        changed = _changed_meanwhile(snapshot, decision, context=context, transactions=transactions)
        if changed is not None:
            return changed
        if kind is ErrorKind.OTHER and taken is None and decision.replaces:
            taken = _replacement_taken(snapshot, decision, failure=failure, transactions=transactions)
            if taken is not None:
                continue
        if kind is not ErrorKind.CONFLICT:
            break
    return OrderOutcome.of(
        snapshot.id,
        snapshot.client_order_id,
        decision,
        decision=Action.SKIP,
        reason=Reason.WRITE_FAILED,
        detail=failure[:DETAIL_MAX],
        now_status="NEW",
    )


def _replacement_taken(
    snapshot: OrderSnapshot, decision: Decision, *, failure: str, transactions: OrderTransactions
) -> str | None:
    """What holds the replacement's client id, when the failure was that clash; else None."""
    wanted = replacement_client_id_for(snapshot, decision)
    try:
        with transactions.order():  # a read of its own, ended at once
            holder = selectors.order_current_get(client_order_id=wanted)
    except DatabaseError as exc:
        if error_kind(exc) is ErrorKind.CONNECTION:
            raise ConnectionLost(error_text(exc)) from exc
        return None
    if holder is None or holder.pk == snapshot.id:
        return None
    return MSG_ID_TAKEN.format(client_order_id=wanted, order_id=holder.pk, status=holder.status)


def _changed_meanwhile(
    snapshot: OrderSnapshot, decision: Decision, *, context: SweepContext, transactions: OrderTransactions
) -> OrderOutcome | None:
    """changed_concurrently when the order is no longer a candidate; None while it is."""
    try:
        with transactions.order():  # a read of its own, ended at once
            current = selectors.order_current_get(order_id=snapshot.id)
            if current is not None:
                fresh = selectors.order_snapshot(current, runs=context.runs)
                problem = candidate_problem(fresh, settings=context.config, now=context.clock())
                if problem is None:
                    return None
            return changed_outcome(snapshot, decision, now=current)
    except DatabaseError as exc:
        if error_kind(exc) is ErrorKind.CONNECTION:
            raise ConnectionLost(error_text(exc)) from exc
        return None  # cannot tell: the caller's failure stands
