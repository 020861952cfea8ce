"""What a real sweep decided for each order it listed, kept as the orders' decision history.

Written after the orders' own transactions and the sweep's audit row, in this app's own
database: it never holds, fails or rolls back an order's cancel or replacement. A
database error is logged and the sweep's result stands.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import DatabaseError, transaction

from recovery.db.history import HISTORY_ALIAS, DecisionEntry, decision_history_prune, decision_history_write
from recovery.db.routers import trading_alias
from recovery.exceptions import error_line
from recovery.sweep.results import OrderOutcome, SweepResult

logger = logging.getLogger("recovery.sweep")

MSG_HISTORY_FAILED = "sweep=%s could not record %d order decision(s) in the history: %s"
MSG_PRUNE_FAILED = "could not prune the order decision history: %s"


def history_entry(outcome: OrderOutcome) -> DecisionEntry:
    detail = outcome.detail or ""
    if outcome.held_by_breaker is not None:
        detail = f"held by the circuit breaker; otherwise {outcome.held_by_breaker}" + (
            f": {detail}" if detail else ""
        )
    return DecisionEntry(
        order_id=outcome.id,
        client_order_id=outcome.client_order_id,
        decision=str(outcome.decision),
        reason=str(outcome.reason),
        detail=detail,
        replacement_id=outcome.replacement_id,
    )


def sweep_history_record(result: SweepResult, *, now: dt.datetime) -> int:
    """Record each order's (decision, reason) of a real sweep; then prune one old batch.

    The orders it lists, and those it only counts (past its listing bounds, `result.omitted`)
    as far as the run kept them (`result.unlisted`, services.plan.UNLISTED_KEPT_MAX). Returns
    the statements the write took (0 when nothing was written).
    """
    if result.dry_run:
        return 0
    if result.connection_lost and HISTORY_ALIAS == trading_alias():
        return 0  # the same server just went away: trying would only wait for its timeout
    entries = [history_entry(o) for o in (*result.orders, *result.unlisted)]
    if not entries:
        return 0  # an idle run stays a few queries; the next run that records something prunes
    statements = 0
    try:
        # A savepoint when a caller holds a transaction: a refused write spoils nothing else.
        with transaction.atomic(using=HISTORY_ALIAS):
            statements = decision_history_write(
                entries, now=now, sweep_id=result.sweep_id, actor=result.actor, audit_id=result.audit_id
            )
    except DatabaseError as exc:
        logger.error(MSG_HISTORY_FAILED, result.sweep_id, len(entries), error_line(exc))
    try:
        with transaction.atomic(using=HISTORY_ALIAS):
            decision_history_prune(now=now)
    except DatabaseError as exc:
        logger.error(MSG_PRUNE_FAILED, error_line(exc))
    return statements
