"""One order's recovery: lock, re-check, conditional cancel, replacement, audit rows.

The caller holds the transaction (services.order_write): either all of it commits or none
of it does (docs/design.md, "Writing it down").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import connections

from recovery import selectors
from recovery.db.audit import (
    ACTION_CANCEL,
    ACTION_REPLACE,
    RESOURCE_ORDER,
    AuditEntry,
    audit_entries_write,
)
from recovery.db.conflicts import order_now_text
from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
from recovery.gates.evidence import evidence_covers
from recovery.services.clock import Clock
from recovery.sweep.chain import (
    cancelled_params,
    chain_root,
    replacement_client_order_id,
    replacement_params,
)
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.decisions import (
    Action,
    Decision,
    GateState,
    OrderSnapshot,
    Reason,
    candidate_problem,
    decide,
)
from recovery.sweep.placement import placement_params
from recovery.sweep.results import OrderOutcome, SweepResult

logger = logging.getLogger("recovery.sweep")

MSG_HELD = "another writer holds the order's row lock (another sweep, the admin, the executor); left to it"
MSG_EVIDENCE_CHANGED = "the order's broker tags or submit command changed since its evidence was read"
MSG_REDECIDED = "the order changed since it was read; under lock it would now be: {action} ({reason})"


@dataclass(frozen=True)
class SweepContext:
    """What every order of one sweep is decided and written with."""

    gates: GateState
    config: AutoRecoveryConfig
    runs: Mapping[int, tuple[int, str]]  # run_id -> (project_id, mode)
    result: SweepResult  # the sweep's id, start and actor; outcomes are added by the caller
    clock: Clock  # the moment of each re-check and write (services.clock)
    # When `gates` was read (by `clock`), and how long it may be acted on: an order whose
    # lock comes later is given back to be decided on a fresh read (PictureStale).
    read_at: dt.datetime | None = None
    fresh_seconds: float = 5.0

    def picture_age(self) -> float:
        return 0.0 if self.read_at is None else (self.clock() - self.read_at).total_seconds()


def order_recover(
    snapshot: OrderSnapshot,
    decision: Decision,
    *,
    context: SweepContext,
    replacement_taken: str | None = None,
) -> OrderOutcome:
    """Cancel (and maybe replace) one order, inside its transaction (services.order_write).

    `replacement_taken`: the replacement's client id belongs to another row already (a
    first try clashed on the unique key): the order is cancelled without a replacement,
    `replacement_id_taken`, the text saying whose id it is.
    """
    config, result = context.config, context.result
    sweep_id = result.sweep_id
    locked = selectors.order_locked_get(order_id=snapshot.id)
    if context.picture_age() > context.fresh_seconds:
        # The broker files, halts, blackout and probe this order is decided on are too old
        # to cancel on: roll back, and let the caller read them again.
        raise PictureStale(snapshot.id)
    # Under the lock, age and in-flight state are judged, and every row stamped, at this moment.
    now = context.clock()
    if locked is None:
        # Held by another writer, or gone: a plain read tells which.
        current = selectors.order_current_get(order_id=snapshot.id)
        if current is None:
            return changed_outcome(snapshot, decision, now=None)
        return _skipped(snapshot, decision, MSG_HELD)
    # Rule 3b again on the row as locked, with its run's status as it is now (read with it);
    # the rest of its run (rule 7c) as the picture read it, a few seconds ago at most.
    statuses = {locked.run_id: locked.run_status_now} if locked.run_id is not None else {}
    placements = {snapshot.run_id: snapshot.run} if snapshot.run_id is not None and snapshot.run else {}
    fresh = selectors.order_snapshot(
        locked, runs=context.runs, run_statuses=statuses, run_placements=placements
    )
    if candidate_problem(fresh, settings=config, now=now) is not None:
        return changed_outcome(snapshot, decision, now=locked)
    evidence = context.gates.evidence.get(snapshot.id)
    if evidence is None or not evidence_covers(
        evidence, order_id=fresh.id, client_order_id=fresh.client_order_id, params=fresh.params
    ):
        return _skipped(snapshot, decision, MSG_EVIDENCE_CHANGED)
    again = decide(fresh, gates=context.gates, settings=config, now=now)
    if (again.action, again.reason) != (decision.action, decision.reason):
        return _skipped(snapshot, decision, MSG_REDECIDED.format(action=again.action, reason=again.reason))
    if replacement_taken is not None and decision.replaces:
        decision = dataclasses.replace(
            decision, action=Action.CANCEL, reason=Reason.REPLACEMENT_ID_TAKEN, detail=replacement_taken
        )
    action = "replace" if decision.replaces else "cancel"
    params = cancelled_params(
        original_params=locked.params, action=action, reason=str(decision.reason), now=now, sweep_id=sweep_id
    )
    if not order_cancel_conditional(order_id=snapshot.id, params=params, now=now):
        # Not possible under our row lock on one server; on a cluster another node may
        # have won. The caller rolls back, re-reads and reports what the order now is.
        raise NothingMatched(snapshot.id)
    replacement = (
        # The chain's place as the locked row says it, not as the earlier read did.
        _replacement_create(locked, fresh, attempt=fresh_attempt(again), now=now, sweep_id=sweep_id)
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


class PictureStale(Exception):  # noqa: N818 (a signal between two services, not an error)
    """The reads an order was decided on are older than the freshness bound: read again."""


class NothingMatched(Exception):  # noqa: N818 (a signal between two services, not an error)
    """The conditional cancel updated no row: the order changed after it was locked."""


def changed_outcome(snapshot: OrderSnapshot, decision: Decision, *, now: TradeOrder | None) -> OrderOutcome:
    """changed_concurrently, saying what the order is now (e.g. cancelled by another sweep)."""
    replacement = None
    wanted = _replacement_client_id_of(now) if now is not None else None
    if wanted is not None:
        replacement = selectors.order_current_get(client_order_id=wanted)
    outcome = _skipped(snapshot, decision, order_now_text(now, replacement=replacement))
    return dataclasses.replace(outcome, now_status=now.status if now is not None else None)


def _replacement_client_id_of(order: TradeOrder) -> str | None:
    """The client id a sweep's replacement of `order` has, when a sweep re-placed it."""
    params = order.params if isinstance(order.params, dict) else {}
    recovery = params.get("auto_recovery") if isinstance(params.get("auto_recovery"), dict) else {}
    if not params.get("auto_recovery_cancel") or recovery.get("last_action") != "replace":
        return None
    attempts = recovery.get("attempts") if type(recovery.get("attempts")) is int else 0
    _, root_client = chain_root(order_id=order.pk, client_order_id=order.client_order_id, params=params)
    return replacement_client_order_id(root_client_order_id=root_client, attempt=attempts + 1)


# The conditional cancel, spelled out: it flips NEW to CANCELED only while the
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


def replacement_client_id_for(snapshot: OrderSnapshot, decision: Decision) -> str:
    """The client id the order's replacement gets (the chain's root, one attempt on)."""
    _, root_client = chain_root(
        order_id=snapshot.id, client_order_id=snapshot.client_order_id, params=snapshot.params
    )
    return replacement_client_order_id(root_client_order_id=root_client, attempt=fresh_attempt(decision))


def fresh_attempt(decision: Decision) -> int:
    """The replacement's place in the chain: one past the replacements already made."""
    return decision.attempt + 1


@dataclass(frozen=True)
class Replacement:
    id: int
    client_order_id: str
    chain: dict[str, Any]  # its params["auto_recovery"]


# run_id NULL: the backend's direct-order loop sends only rows with no run; a row added to
# a run is never sent (the run's intent file was written when the run was built).
REPLACEMENT_SQL = (
    "INSERT INTO trade_orders (run_id, client_order_id, symbol, side, quantity, order_type, "
    "limit_price, status, filled_quantity, params, created_at, updated_at) "
    "VALUES (NULL, %s, %s, %s, %s, %s, %s, 'NEW', 0, %s, %s, %s)"
)


def _replacement_create(
    original: TradeOrder, snapshot: OrderSnapshot, *, attempt: int, now: dt.datetime, sweep_id: str
) -> Replacement:
    """Insert the new NEW order; a clash on the unique client_order_id rolls the order back.

    Written as the backend's direct-order loop takes it (sweep.placement): no run, its
    retry pending and due at once, the original's mode and project (its run's, when it has
    one), so the backend sends it, once, with its own retries.
    """
    new_params = replacement_params(
        original_params=original.params,
        origin_order_id=original.pk,
        origin_client_order_id=original.client_order_id,
        attempt=attempt,
        now=now,
        sweep_id=sweep_id,
        placement=placement_params(
            mode=snapshot.mode, project_id=snapshot.project_id, run_id=original.run_id, run=snapshot.run
        ),
    )
    # The chain's root is in the new params already; no second walk of the original's.
    root_client = new_params["auto_recovery"]["root_client_order_id"]
    client_order_id = replacement_client_order_id(root_client_order_id=root_client, attempt=attempt)
    connection = connections[trading_alias()]
    stamp = connection.ops.adapt_datetimefield_value(now)
    row = [
        client_order_id, original.symbol, original.side, original.quantity,
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
