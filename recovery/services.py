"""Writes: the sweep, one order's recovery, and the sweep's audit row.

Each order is its own transaction: lock it (skipping one another sweep holds),
re-check it, cancel it conditionally, insert its replacement, write the audit rows.
Either all of that commits or none of it does (design.md, "Writing it down").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, transaction

from recovery import selectors
from recovery.audit import (
    ACTION_CANCEL,
    ACTION_REPLACE,
    ACTION_SWEEP,
    RESOURCE_ORDER,
    RESOURCE_SWEEP,
    AuditEntry,
    audit_entries_write,
)
from recovery.chain import (
    cancelled_params,
    chain_root,
    replacement_client_order_id,
    replacement_params,
)
from recovery.config import WHOLE_COLUMN, AutoRecoveryConfig
from recovery.decisions import (
    Action,
    Decision,
    GateState,
    NotCandidate,
    OrderSnapshot,
    Reason,
    candidate_problem,
    decide,
)
from recovery.locks import sweep_lock
from recovery.models import TradeOrder
from recovery.results import LeftAlone, OrderOutcome, SweepResult
from recovery.routers import trading_alias

logger = logging.getLogger("recovery.sweep")

MSG_NAIVE_NOW = "now must be an aware datetime"
MSG_BAD_LIMIT = "limit must be a positive whole number"
MSG_CHANGED = "the order changed or another sweep holds it since it was read"
MSG_REDECIDED = "the order changed since it was read; under lock it would now be: {action} ({reason})"


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
    rows = selectors.stale_order_list(
        now=now, timeout_seconds=config.new_timeout_seconds, limit=limit, order_ids=order_ids
    )
    runs = selectors.run_projects_get(o.run_id for o in rows)
    snapshots = [selectors.order_snapshot(o, runs=runs) for o in rows]
    gates = selectors.gates_get(config=config, now=now, orders=snapshots)
    decided = [(s, decide(s, gates=gates.state, settings=config, now=now)) for s in snapshots]
    result = SweepResult(
        sweep_id=uuid.uuid4().hex,
        actor=actor,
        dry_run=dry_run,
        now=now,
        settings=config,
        settings_warnings=in_force.warnings,
        gates=gates.report,
        would_replace=sum(1 for _, d in decided if d.replaces),
    )
    _log_settings_warnings(result)
    if order_ids is not None:
        result.left_alone = _left_alone(order_ids, found={s.id for s in snapshots}, config=config, now=now)
    if result.would_replace > config.max_replacements_per_sweep:
        if order_ids is not None and confirmed_replacements == result.would_replace:
            result.breaker_overridden = True
        else:
            return _circuit_open(result, decided)
    if dry_run:
        result.orders = [OrderOutcome.of(s.id, s.client_order_id, d) for s, d in decided]
        return result
    for snapshot, decision in decided:
        outcome = _order_settle(
            snapshot, decision, gates=gates.state, config=config, runs=runs, result=result
        )
        _log_outcome(result.sweep_id, outcome)
        result.orders.append(outcome)
    if result.cancelled or result.failed:
        _sweep_audit_write(result)
    level = logging.INFO if result.cancelled or result.failed else logging.DEBUG
    logger.log(level, "sweep=%s actor=%s %s", result.sweep_id, actor, _counts_text(result))
    return result


def sweep_run_exclusive(**kwargs: object) -> SweepResult:
    """sweep_run under the command's named lock; SweepLockHeld when another run has it."""
    with sweep_lock(using=trading_alias()):
        return sweep_run(**kwargs)  # type: ignore[arg-type]


def _circuit_open(result: SweepResult, decided: list[tuple[OrderSnapshot, Decision]]) -> SweepResult:
    """Too many replacements at once means something systemic: touch nothing, say so loudly."""
    result.circuit_open = True
    result.orders = [
        OrderOutcome.of(s.id, s.client_order_id, d, decision=Action.SKIP, reason=Reason.CIRCUIT_OPEN)
        for s, d in decided
    ]
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
    snapshot: OrderSnapshot,
    decision: Decision,
    *,
    gates: GateState,
    config: AutoRecoveryConfig,
    runs: dict[int, tuple[int, str]],
    result: SweepResult,
) -> OrderOutcome:
    if not decision.cancels:
        return OrderOutcome.of(snapshot.id, snapshot.client_order_id, decision)
    try:
        with transaction.atomic(using=trading_alias()):
            return order_recover(snapshot, decision, gates=gates, config=config, runs=runs, result=result)
    except DatabaseError as exc:
        # Expected for one order (unique clash, deadlock, lost connection): the
        # transaction rolled back, the order stays NEW, the sweep goes on.
        text = f"{type(exc).__name__}: {exc}"[:500]
        return OrderOutcome.of(
            snapshot.id,
            snapshot.client_order_id,
            decision,
            decision=Action.SKIP,
            reason=Reason.WRITE_FAILED,
            detail=text,
        )


def order_recover(
    snapshot: OrderSnapshot,
    decision: Decision,
    *,
    gates: GateState,
    config: AutoRecoveryConfig,
    runs: dict[int, tuple[int, str]],
    result: SweepResult,
) -> OrderOutcome:
    """Cancel (and maybe replace) one order. Call inside transaction.atomic()."""
    now, sweep_id = result.now, result.sweep_id
    locked = selectors.order_locked_get(order_id=snapshot.id)
    if locked is None:
        return _skipped(snapshot, decision, MSG_CHANGED)
    fresh = selectors.order_snapshot(locked, runs=runs)
    if candidate_problem(fresh, settings=config, now=now) is not None:
        return _skipped(snapshot, decision, MSG_CHANGED)
    again = decide(fresh, gates=gates, settings=config, now=now)
    if (again.action, again.reason) != (decision.action, decision.reason):
        return _skipped(snapshot, decision, MSG_REDECIDED.format(action=again.action, reason=again.reason))
    action = "replace" if decision.replaces else "cancel"
    params = cancelled_params(
        original_params=locked.params, action=action, reason=str(decision.reason), now=now, sweep_id=sweep_id
    )
    cancelled = order_cancel_conditional(order_id=snapshot.id, params=params, now=now)
    if not cancelled:
        return _skipped(snapshot, decision, MSG_CHANGED)
    replacement = (
        _replacement_create(locked, attempt=fresh_attempt(decision), now=now, sweep_id=sweep_id)
        if decision.replaces
        else None
    )
    outcome = OrderOutcome.of(
        snapshot.id,
        snapshot.client_order_id,
        decision,
        replacement_id=replacement.id if replacement else None,
        replacement_client_order_id=replacement.client_order_id if replacement else None,
    )
    audit_entries_write(_order_audit_entries(outcome, replacement, result), now=now)
    return outcome


# design.md's conditional cancel, spelled out: it flips NEW to CANCELED only while the
# broker has not seen the order and nothing filled. Plain SQL (the same on MySQL and
# SQLite) because it is the statement every guarantee rests on, and it runs once per order.
CANCEL_SQL = (
    "UPDATE trade_orders SET status = 'CANCELED', params = %s, updated_at = %s "
    "WHERE id = %s AND status = 'NEW' AND ib_order_id IS NULL AND ib_perm_id IS NULL "
    "AND COALESCE(filled_quantity, 0) = 0"
)


def order_cancel_conditional(*, order_id: int, params: dict[str, Any], now: dt.datetime) -> bool:
    """Cancel the order if it is still NEW, unacknowledged and unfilled; False if it was not."""
    connection = connections[trading_alias()]
    with connection.cursor() as cursor:
        cursor.execute(
            CANCEL_SQL, [json.dumps(params), connection.ops.adapt_datetimefield_value(now), order_id]
        )
        return cursor.rowcount == 1


def fresh_attempt(decision: Decision) -> int:
    """The replacement's place in the chain: one past the replacements already made."""
    return decision.attempt + 1


@dataclass(frozen=True)
class Replacement:
    id: int
    client_order_id: str
    chain: dict[str, Any]  # its params["auto_recovery"]


REPLACEMENT_SQL = (
    "INSERT INTO trade_orders (run_id, client_order_id, symbol, side, quantity, order_type, "
    "limit_price, status, filled_quantity, params, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, 'NEW', 0, %s, %s, %s)"
)


def _replacement_create(
    original: TradeOrder, *, attempt: int, now: dt.datetime, sweep_id: str
) -> Replacement:
    """Insert the new NEW order; a clash on the unique client_order_id rolls the order back."""
    params = original.params if isinstance(original.params, dict) else {}
    _, root_client = chain_root(order_id=original.pk, client_order_id=original.client_order_id, params=params)
    client_order_id = replacement_client_order_id(root_client_order_id=root_client, attempt=attempt)
    new_params = replacement_params(
        original_params=original.params,
        origin_order_id=original.pk,
        origin_client_order_id=original.client_order_id,
        attempt=attempt,
        now=now,
        sweep_id=sweep_id,
    )
    connection = connections[trading_alias()]
    stamp = connection.ops.adapt_datetimefield_value(now)
    row = [
        original.run_id, client_order_id, original.symbol, original.side, original.quantity,
        original.order_type, original.limit_price, json.dumps(new_params, allow_nan=False), stamp, stamp,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(REPLACEMENT_SQL, row)
        return Replacement(cursor.lastrowid, client_order_id, new_params["auto_recovery"])


def _order_audit_entries(
    outcome: OrderOutcome, replacement: Replacement | None, result: SweepResult
) -> list[AuditEntry]:
    detail = {"sweep_id": result.sweep_id, **outcome.as_dict()}
    entries = [AuditEntry(result.actor, ACTION_CANCEL, RESOURCE_ORDER, outcome.id, detail)]
    if replacement is not None:
        entries.append(
            AuditEntry(
                result.actor,
                ACTION_REPLACE,
                RESOURCE_ORDER,
                replacement.id,  # the backend's own replace rows point at the new order
                {
                    "sweep_id": result.sweep_id,
                    "origin_order_id": outcome.id,
                    "origin_client_order_id": outcome.client_order_id,
                    "client_order_id": replacement.client_order_id,
                    "attempt": replacement.chain["attempts"],
                    "root_order_id": replacement.chain["root_order_id"],
                    "root_client_order_id": replacement.chain["root_client_order_id"],
                },
            )
        )
    return entries


def _skipped(snapshot: OrderSnapshot, decision: Decision, detail: str) -> OrderOutcome:
    return OrderOutcome.of(
        snapshot.id,
        snapshot.client_order_id,
        decision,
        decision=Action.SKIP,
        reason=Reason.CHANGED_CONCURRENTLY,
        detail=detail,
    )


def _sweep_audit_write(result: SweepResult) -> None:
    """One row per sweep that cancelled or failed something (or opened the breaker)."""
    entry = AuditEntry(result.actor, ACTION_SWEEP, RESOURCE_SWEEP, None, result.as_dict())
    try:
        with transaction.atomic(using=trading_alias()):
            result.audit_id = audit_entries_write([entry], now=result.now)
    except DatabaseError:
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
