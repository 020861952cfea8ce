"""The sweep: select, decide, breaker, then one transaction per order; the sweep's audit row.

Each order is its own transaction (services.order): lock it (skipping one another
sweep holds), re-check it, cancel it conditionally, insert its replacement, write the
audit rows. One bad order is recorded and the loop goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence

from django.db import DatabaseError, transaction

from recovery import selectors
from recovery.db.audit import (
    ACTION_SWEEP,
    RESOURCE_SWEEP,
    AuditEntry,
    audit_entries_write,
)
from recovery.db.audit_spool import audit_spool_put
from recovery.db.errors import ErrorKind, error_kind
from recovery.db.locks import sweep_lock
from recovery.db.routers import trading_alias
from recovery.db.transactions import OrderTransactions, order_transactions
from recovery.exceptions import ConnectionLost
from recovery.services.order import SweepContext
from recovery.services.order_write import order_write
from recovery.services.plan import sweep_plan
from recovery.sweep.config import WHOLE_COLUMN, AutoRecoveryConfig
from recovery.sweep.decisions import (
    Action,
    Decision,
    NotCandidate,
    OrderSnapshot,
    Reason,
    candidate_problem,
)
from recovery.sweep.results import LeftAlone, OrderOutcome, SweepResult

logger = logging.getLogger("recovery.sweep")

MSG_NAIVE_NOW = "now must be an aware datetime"
MSG_BAD_LIMIT = "limit must be a positive whole number"


def sweep_run(
    *,
    now: dt.datetime,
    actor: str,
    dry_run: bool = False,
    limit: int = 200,
    order_ids: Sequence[int] | None = None,
    confirmed_replacements: int | None = None,
) -> SweepResult:
    """Decide every stale NEW order (or those of `order_ids`) and, unless dry, act on it.

    `confirmed_replacements`: the admin's recovery of selected orders may pass the
    circuit breaker when the operator confirmed exactly this many replacements.
    """
    if now.tzinfo is None:
        raise ValueError(MSG_NAIVE_NOW)
    if type(limit) is not int or limit < 1:
        raise ValueError(MSG_BAD_LIMIT)
    in_force = selectors.settings_in_force_get()
    config = in_force.config
    if order_ids is not None:
        order_ids = sorted(set(order_ids))
        limit = max(limit, len(order_ids))
    plan = sweep_plan(config=config, now=now, limit=limit, order_ids=order_ids)
    decided = plan.decided
    result = SweepResult(
        sweep_id=uuid.uuid4().hex,
        actor=actor,
        dry_run=dry_run,
        now=now,
        settings=config,
        settings_warnings=in_force.warnings,
        gates=plan.report,
        would_replace=plan.would_replace,
        omitted=dict(plan.omitted),
        omitted_capped=sorted(plan.omitted_capped),
    )
    _log_settings_warnings(result)
    if order_ids is not None:
        result.left_alone = _left_alone(order_ids, found={s.id for s, _ in decided}, config=config, now=now)
    if result.would_replace > config.max_replacements_per_sweep:
        if order_ids is not None and confirmed_replacements == result.would_replace:
            result.breaker_overridden = True
        else:
            return _circuit_open(result, decided, held_back=plan.held_back)
    if dry_run:
        result.orders = [OrderOutcome.of(s.id, s.client_order_id, d) for s, d in decided] + plan.held_back
        return result
    assert plan.state is not None
    context = SweepContext(gates=plan.state, config=config, runs=plan.runs, result=result)
    with order_transactions(using=trading_alias()) as transactions:
        for done, (snapshot, decision) in enumerate(decided):
            try:
                outcome = _order_settle(snapshot, decision, context=context, transactions=transactions)
            except ConnectionLost as exc:
                # Every later statement would fail too (or hang until its timeout): stop.
                _connection_lost(result, decided[done:], error=str(exc))
                break
            _log_outcome(result.sweep_id, outcome)
            result.orders.append(outcome)
    result.orders.extend(plan.held_back)
    if result.cancelled or result.failed or result.connection_lost:
        _sweep_audit_write(result)
    level = logging.INFO if result.cancelled or result.failed else logging.DEBUG
    logger.log(level, "sweep=%s actor=%s %s", result.sweep_id, actor, _counts_text(result))
    return result


def sweep_run_exclusive(**kwargs: object) -> SweepResult:
    """sweep_run under the command's named lock; SweepLockHeld when another run has it."""
    with sweep_lock(using=trading_alias()):
        return sweep_run(**kwargs)  # type: ignore[arg-type]


def _circuit_open(
    result: SweepResult, decided: list[tuple[OrderSnapshot, Decision]], *, held_back: list[OrderOutcome]
) -> SweepResult:
    """Too many replacements at once means something systemic: touch nothing, say so loudly."""
    result.circuit_open = True
    result.orders = [
        OrderOutcome.of(
            s.id,
            s.client_order_id,
            d,
            decision=Action.SKIP,
            reason=Reason.CIRCUIT_OPEN,
            held_by_breaker=d.reason,
        )
        for s, d in decided
    ] + held_back
    logger.error(
        "sweep=%s circuit breaker open: %d orders would have been re-placed, more than "
        "max_replacements_per_sweep=%d; nothing was cancelled or re-placed",
        result.sweep_id,
        result.would_replace,
        result.settings.max_replacements_per_sweep,
    )
    if not result.dry_run:
        _sweep_audit_write(result)
    return result


def _order_settle(
    snapshot: OrderSnapshot, decision: Decision, *, context: SweepContext, transactions: OrderTransactions
) -> OrderOutcome:
    if not decision.cancels:
        return OrderOutcome.of(snapshot.id, snapshot.client_order_id, decision)
    return order_write(snapshot, decision, context=context, transactions=transactions)


def _connection_lost(result: SweepResult, rest: list[tuple[OrderSnapshot, Decision]], *, error: str) -> None:
    result.connection_lost = error
    result.in_flight = rest[0][0].id
    result.not_tried = sum(1 for _, d in rest[1:] if d.cancels)
    logger.error(
        "sweep=%s lost the database connection (%s): %d order(s) recovered before, order %d in flight, "
        "%d not tried and left NEW",
        result.sweep_id,
        error,
        result.cancelled,
        result.in_flight,
        result.not_tried,
    )


def _sweep_audit_write(result: SweepResult) -> None:
    """One row per sweep that cancelled or failed something (or opened the breaker).

    When the database is gone the row is kept in the spool folder instead; the next run
    writes it (recovery.db.audit_spool).
    """
    entry = AuditEntry(result.actor, ACTION_SWEEP, RESOURCE_SWEEP, None, result.as_dict())
    if result.connection_lost:
        audit_spool_put(entry, now=result.now)
        return
    try:
        with transaction.atomic(using=trading_alias()):
            result.audit_id = audit_entries_write([entry], now=result.now)
    except DatabaseError as exc:
        if error_kind(exc) is ErrorKind.CONNECTION:
            audit_spool_put(entry, now=result.now)
            return
        # The per-order rows are committed already; losing the summary is bad but
        # must not turn a done sweep into a crash. The log line keeps the facts.
        logger.exception("sweep=%s could not write its audit row: %s", result.sweep_id, _counts_text(result))


def _left_alone(
    order_ids: Sequence[int], *, found: set[int], config: AutoRecoveryConfig, now: dt.datetime
) -> list[LeftAlone]:
    missing = [i for i in order_ids if i not in found]
    rows = selectors.orders_by_id(missing)
    left = []
    for order_id in missing:
        row = rows.get(order_id)
        if row is None:
            left.append(LeftAlone(order_id, None, NotCandidate.NOT_FOUND))
            continue
        why = candidate_problem(selectors.order_snapshot(row, runs={}), settings=config, now=now)
        left.append(
            LeftAlone(order_id, row.client_order_id, why or NotCandidate.CHANGED_MEANWHILE, row.status)
        )
    return left


def _counts_text(result: SweepResult) -> str:
    return " ".join(f"{k}={v}" for k, v in result.counts().items())


def _log_outcome(sweep_id: str, outcome: OrderOutcome) -> None:
    head = f"sweep={sweep_id} order={outcome.id} client_order_id={outcome.client_order_id}"
    if outcome.decision is Action.REPLACE:
        logger.info(
            "%s cancelled and re-placed as order=%s client_order_id=%s",
            head,
            outcome.replacement_id,
            outcome.replacement_client_order_id,
        )
    elif outcome.decision is Action.CANCEL:
        logger.info("%s cancelled without replacement: %s", head, outcome.reason)
    elif outcome.failed:
        logger.error("%s write failed, order left NEW: %s", head, outcome.detail)
    elif outcome.reason is Reason.CHANGED_CONCURRENTLY:
        logger.info("%s left alone: %s", head, outcome.detail)
    else:
        logger.debug("%s skipped: %s", head, outcome.reason)


def _log_settings_warnings(result: SweepResult) -> None:
    for warning in result.settings_warnings:
        # NULL / no row is a normal state (all defaults); a bad value is a misconfiguration.
        level = logging.DEBUG if warning.key == WHOLE_COLUMN and warning.value is None else logging.WARNING
        logger.log(level, "sweep=%s settings: %s", result.sweep_id, warning)
