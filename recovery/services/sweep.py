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
    sweep_detail_bounded,
)
from recovery.db.audit_spool import audit_spool_put
from recovery.db.errors import ErrorKind, error_kind
from recovery.db.locks import sweep_lock
from recovery.db.routers import trading_alias
from recovery.db.transactions import order_transactions
from recovery.services.clock import Clock, SweepClock
from recovery.services.fresh import FreshWriter
from recovery.services.history import sweep_history_record
from recovery.services.plan import Plan, sweep_plan
from recovery.sweep.config import WHOLE_COLUMN, AutoRecoveryConfig
from recovery.sweep.decisions import (
    Action,
    Decision,
    NotCandidate,
    OrderSnapshot,
    Reason,
    candidate_problem,
    sweep_gate_blocking,
)
from recovery.sweep.results import LeftAlone, OrderOutcome, SweepResult

logger = logging.getLogger("recovery.sweep")

MSG_NAIVE_NOW = "now must be an aware datetime"
BREAKER_OPENED, BREAKER_CLOSED = "opened", "closed"
MSG_BAD_LIMIT = "limit must be a positive whole number"
MSG_IB_UNREACHABLE = "the IB gateway {host}:{port} is not reachable ({detail})"
MSG_BAD_MAX_SECONDS = "max_seconds must be a positive number of seconds"
MSG_FIRST_PASS_OUT_OF_TIME = (
    "the first pass over the stale backlog did not finish within the time budget of {seconds:g} s: "
    "nothing was cancelled or re-placed (raise --max-seconds, or lower the backlog)"
)


def sweep_run(
    *,
    now: dt.datetime,
    actor: str,
    dry_run: bool = False,
    limit: int = 200,
    order_ids: Sequence[int] | None = None,
    confirmed_replacements: int | None = None,
    clock: Clock | None = None,
    max_seconds: float | None = None,
) -> SweepResult:
    """Decide every stale NEW order (or those of `order_ids`) and, unless dry, act on it.

    `confirmed_replacements`: the admin's recovery of selected orders may pass the
    circuit breaker when the operator confirmed exactly this many replacements.
    `clock`: the moment of each write and re-check under a lock; by default `now`
    moving on at the pace of real time (services.clock).
    `max_seconds`: the run's time budget; past it no new order is started and the run
    ends normally, saying how many it left (`left_for_next_run`). None: no budget.
    """
    clock = clock or SweepClock(start=now)
    if max_seconds is not None and (
        isinstance(max_seconds, bool) or not isinstance(max_seconds, int | float) or not max_seconds > 0
    ):
        raise ValueError(MSG_BAD_MAX_SECONDS)
    started = clock()
    deadline = None if max_seconds is None else started + dt.timedelta(seconds=max_seconds)
    if now.tzinfo is None:
        raise ValueError(MSG_NAIVE_NOW)
    if type(limit) is not int or limit < 1:
        raise ValueError(MSG_BAD_LIMIT)
    in_force = selectors.settings_in_force_get()
    config = in_force.config
    if order_ids is not None:
        order_ids = sorted(set(order_ids))
        limit = max(limit, len(order_ids))
    plan = sweep_plan(
        config=config, now=now, limit=limit, order_ids=order_ids, clock=clock, deadline=deadline
    )
    decided = plan.decided
    # Counted only when this run would re-place something: an idle sweep stays a few queries.
    # The plan's figure is exact, or past the per-sweep cap (which opens the breaker anyway).
    last_hour = (
        selectors.replacements_last_hour(now=now, at_most=config.max_replacements_per_hour)
        if plan.would_replace
        else 0
    )
    room_this_hour = max(0, config.max_replacements_per_hour - last_hour)
    result = SweepResult(
        sweep_id=uuid.uuid4().hex,
        actor=actor,
        dry_run=dry_run,
        now=now,
        settings=config,
        settings_warnings=in_force.warnings,
        gates=plan.report,
        would_replace=plan.would_replace,
        replaced_last_hour=last_hour,
        omitted=dict(plan.omitted),
        omitted_capped=sorted(plan.omitted_capped),
        unlisted=plan.unlisted,
    )
    _log_settings_warnings(result)
    assert plan.state is not None
    _blocked_note(result, plan=plan, config=config)
    if order_ids is not None:
        result.left_alone = _left_alone(order_ids, found={s.id for s, _ in decided}, config=config, now=now)
    # Only a sweep over the whole backlog (cron, the API) opens or closes the breaker's state;
    # the admin's recovery of selected orders weighs only them.
    whole_backlog = order_ids is None and not dry_run
    if result.would_replace > room_this_hour:
        # The rolling hour is never overridden: a burst of re-placed orders makes things worse.
        return _circuit_open(result, decided, held_back=plan.held_back, clock=clock, tell=whole_backlog)
    if result.would_replace > config.max_replacements_per_sweep:
        if order_ids is not None and confirmed_replacements == result.would_replace:
            result.breaker_overridden = True
        else:
            return _circuit_open(result, decided, held_back=plan.held_back, clock=clock, tell=whole_backlog)
    if whole_backlog and selectors.breaker_was_open():
        result.breaker_changed = BREAKER_CLOSED
        logger.warning(
            "sweep=%s circuit breaker closed: %d replacement(s) within max_replacements_per_sweep=%d "
            "and max_replacements_per_hour=%d; recovery goes on",
            result.sweep_id,
            result.would_replace,
            config.max_replacements_per_sweep,
            config.max_replacements_per_hour,
        )
    if dry_run:
        result.orders = [OrderOutcome.of(s.id, s.client_order_id, d) for s, d in decided] + plan.held_back
        return result
    if plan.out_of_time:
        # The read-only first pass over the backlog is what the breaker rests on: unfinished,
        # it proves nothing, so nothing is written.
        result.out_of_time = MSG_FIRST_PASS_OUT_OF_TIME.format(seconds=max_seconds)
        result.left_for_next_run = sum(1 for _, d in decided if d.cancels)
        result.orders = [OrderOutcome.of(s.id, s.client_order_id, d) for s, d in decided if not d.cancels]
        result.orders.extend(plan.held_back)
        logger.warning("sweep=%s %s", result.sweep_id, result.out_of_time)
        sweep_history_record(result, now=clock())
        return result
    writer = FreshWriter(
        plan=plan, config=config, result=result, clock=clock, deadline=deadline, budget_seconds=max_seconds
    )
    with order_transactions(using=trading_alias()) as transactions:
        writer.run(transactions)
    result.orders.extend(plan.held_back)
    if result.cancelled or result.failed or result.connection_lost or result.breaker_changed:
        _sweep_audit_write(result, now=clock())
    # After the orders' transactions and the sweep's row, apart from both (services.history).
    sweep_history_record(result, now=clock())
    level = logging.INFO if result.cancelled or result.failed else logging.DEBUG
    logger.log(level, "sweep=%s actor=%s %s", result.sweep_id, actor, _counts_text(result))
    return result


def _blocked_note(result: SweepResult, *, plan: Plan, config: AutoRecoveryConfig) -> None:
    """A sweep-wide gate decided every order alike: the run's outcome says which, in words.

    Logged at debug only: the command tells ops once when the run's state changes
    (ops.runs), not every minute (cron mails every line).
    """
    assert plan.state is not None
    ib = plan.report["ib"]
    blocking = sweep_gate_blocking(gates=plan.state, settings=config, ib_probed=bool(ib.get("probed")))
    if blocking is None:
        return
    reason, why = blocking
    if reason is Reason.CLOCK_SKEW:
        result.clock_skew = why
    if reason is Reason.IB_UNREACHABLE:
        why = MSG_IB_UNREACHABLE.format(host=ib.get("host"), port=ib.get("port"), detail=ib.get("detail"))
    result.blocked_by, result.blocked = str(reason), why
    logger.debug("sweep=%s blocked by %s: %s; nothing was changed", result.sweep_id, reason, why)


def sweep_run_exclusive(**kwargs: object) -> SweepResult:
    """sweep_run under the command's named lock; SweepLockHeld when another run has it."""
    with sweep_lock(using=trading_alias()):
        return sweep_run(**kwargs)  # type: ignore[arg-type]


def _circuit_open(
    result: SweepResult,
    decided: list[tuple[OrderSnapshot, Decision]],
    *,
    held_back: list[OrderOutcome],
    clock: Clock,
    tell: bool,
) -> SweepResult:
    """Too many replacements at once means something systemic: touch nothing, say so loudly,
    once: when `tell` (a real sweep over the whole backlog) and the last sweep's row had the
    breaker closed, one error line and one audit row; while it stays open, a warning line.
    (The admin's run of selected orders and the previews are told on their own pages.)
    """
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
    opened = tell and not selectors.breaker_was_open()
    if opened:
        result.breaker_changed = BREAKER_OPENED
    # While it stays open the exit code (3), the heartbeat and the metrics say so; a line
    # every minute would only be cron mail.
    level = logging.ERROR if opened else logging.DEBUG if tell else logging.INFO
    logger.log(
        level,
        "sweep=%s circuit breaker %s: at least %d stale orders would have been re-placed, more than "
        "max_replacements_per_sweep=%d or, with the %d of the last hour, max_replacements_per_hour=%d; "
        "nothing was cancelled or re-placed",
        result.sweep_id,
        "open" if opened or not tell else "still open",
        result.would_replace,
        result.settings.max_replacements_per_sweep,
        result.replaced_last_hour,
        result.settings.max_replacements_per_hour,
    )
    if opened or (not result.dry_run and not tell):
        _sweep_audit_write(result, now=clock())
    sweep_history_record(result, now=clock())
    return result


def _sweep_audit_write(result: SweepResult, *, now: dt.datetime) -> None:
    """One row per sweep that cancelled or failed something (or opened the breaker).

    Bounded (db.audit.sweep_detail_bounded): exact counts, at most a few hundred orders;
    each order's decision is in the decision history. When the database is gone the row is
    kept in the spool folder instead; the next run writes it (recovery.db.audit_spool).
    """
    detail = sweep_detail_bounded(result.as_dict())
    entry = AuditEntry(result.actor, ACTION_SWEEP, RESOURCE_SWEEP, None, detail)
    if result.connection_lost:
        audit_spool_put(entry, now=now)
        return
    try:
        with transaction.atomic(using=trading_alias()):
            result.audit_id = audit_entries_write([entry], now=now)
    except DatabaseError as exc:
        if error_kind(exc) is ErrorKind.CONNECTION:
            audit_spool_put(entry, now=now)
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


def _log_settings_warnings(result: SweepResult) -> None:
    for warning in result.settings_warnings:
        # NULL / no row is a normal state (all defaults); a bad value is a misconfiguration.
        level = logging.DEBUG if warning.key == WHOLE_COLUMN and warning.value is None else logging.WARNING
        logger.log(level, "sweep=%s settings: %s", result.sweep_id, warning)
