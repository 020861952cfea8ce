"""The decision table of docs/design.md as a pure function of plain data.

No ORM, no clock, no files: `decide(order, gates=..., settings=..., now=...)` reads an
OrderSnapshot and a GateState gathered once per sweep and returns a frozen Decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from recovery.db.timestamps import trade_date_for
from recovery.gates.bridge import symbol_key
from recovery.gates.evidence import OrderEvidence, in_flight_text, submit_command_get
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.placement import MSG_NOT_READ, RunPlacement, SenderState, partial_resume_pending

SIDES = frozenset({"BUY", "SELL"})
ORDER_TYPES = frozenset({"MKT", "LMT", "ADAPTIVE_LMT", "PEG_MID"})
LIMIT_LIKE = frozenset({"LMT", "PEG_MID"})


# How long the backend's bridge commands live when it writes them (lean_bridge_commands):
# the stand-in for an expires_at that is missing or unreadable.
COMMAND_TTL_SECONDS = 120


# The backend's finished run statuses (_TERMINAL_RUN_STATUSES): until then a run owns its orders.
TERMINAL_RUN_STATUSES = frozenset(
    {"done", "failed", "partial", "blocked", "canceled", "cancelled", "terminated"}
)
MSG_RUN_OWNS = "run {run_id} is {status!r}, not finished: the run may still send it"
MSG_RETRY_OWNS = "params.direct_retry is pending: the backend's direct-order loop will send it"
MSG_LEADER_OWNS = "a leader submit command is pending: the backend's direct-order loop re-sends it"


class Action(StrEnum):
    REPLACE = "replace"
    CANCEL = "cancel"
    SKIP = "skip"


class Reason(StrEnum):
    """Every reason code; the same strings reach the audit rows, JSON output and admin."""

    DISABLED = "disabled"
    BLACKOUT = "blackout"
    CLOCK_SKEW = "clock_skew"
    IB_UNREACHABLE = "ib_unreachable"
    GUARD_HALTED = "guard_halted"
    OWNED_BY_BACKEND = "owned_by_backend"
    OPEN_AT_BROKER = "open_at_broker"
    SEEN_BY_BROKER = "seen_by_broker"
    BROKER_EVIDENCE_UNREADABLE = "broker_evidence_unreadable"
    BROKER_EVIDENCE_UNAVAILABLE = "broker_evidence_unavailable"
    SUBMIT_IN_FLIGHT = "submit_in_flight"
    CLOSED_AT_BROKER = "closed_at_broker"
    INVALID_ORDER = "invalid_order"
    RETRIES_EXHAUSTED = "retries_exhausted"
    STALE_INTENT = "stale_intent"
    RUN_ORDER_NOT_REPLACED = "run_order_not_replaced"
    OUTSIDE_RTH = "outside_rth"
    QUOTE_UNAVAILABLE = "quote_unavailable"
    PRICE_DEVIATION = "price_deviation"
    BACKEND_SENDER_UNAVAILABLE = "backend_sender_unavailable"
    REPLACED = "replaced"
    CIRCUIT_OPEN = "circuit_open"
    REPLACEMENT_ID_TAKEN = "replacement_id_taken"  # found when writing: cancelled, not re-placed
    CHANGED_CONCURRENTLY = "changed_concurrently"
    WRITE_FAILED = "write_failed"


class NotCandidate(StrEnum):
    """Why an order named by hand (admin selection) is not a sweep candidate at all."""

    NOT_NEW = "not_new"
    ACKNOWLEDGED = "acknowledged"
    FILLED = "filled"
    TOO_YOUNG = "too_young"
    INTENT_ONLY = "intent_only"
    NOT_FOUND = "not_found"
    CHANGED_MEANWHILE = "changed_meanwhile"


@dataclass(frozen=True)
class OrderSnapshot:
    id: int
    client_order_id: str
    symbol: str
    side: Any
    quantity: Any
    order_type: Any
    limit_price: Any
    status: str
    filled_quantity: Any
    ib_order_id: int | None
    ib_perm_id: int | None
    params: Mapping[str, Any]  # {} when the column holds anything but an object
    created_at: datetime
    updated_at: datetime | None
    project_id: int | None = None
    mode: str = "paper"
    run_id: int | None = None
    run_status: str | None = None  # its run's status as read; None when not looked up
    run: RunPlacement | None = None  # what rule 7c and the replacement read of its run


@dataclass(frozen=True)
class GateState:
    """Outside facts, gathered once per sweep before any order is decided.

    `evidence` holds what the broker's own files say about each candidate, by order id
    (gates.evidence); an order missing from it was not looked up and is left alone.
    `bridge_problem` says why the bridge root could not be read at all (then nothing is
    changed), None when it could.
    """

    ib_reachable: bool
    market_open: bool
    bridge_problem: str | None
    evidence: Mapping[int, OrderEvidence]
    in_blackout: bool = False
    halted: frozenset[tuple[int, str]] = frozenset()
    quotes: Mapping[str, float] | None = None  # None: no fresh quotes file
    # The database's clock minus this host's, in seconds (None: not measured, the embedded
    # database shares this host's clock); past the tolerance nothing is changed (rule 1c).
    clock_skew_seconds: float | None = None
    clock_tolerance_seconds: float = 5.0
    # Would the backend's direct-order loop send a replacement (rule 10b)? None: not read,
    # and nothing is re-placed on a sender nobody looked at.
    sender: SenderState | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason
    age_seconds: float
    attempt: int  # replacements already made along the chain
    quote: float | None = None
    deviation_pct: float | None = None
    detail: str | None = None
    evidence: Mapping[str, Any] | None = None  # the broker evidence behind a skip

    @property
    def cancels(self) -> bool:
        return self.action in (Action.CANCEL, Action.REPLACE)

    @property
    def replaces(self) -> bool:
        return self.action is Action.REPLACE


def _positive_finite(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def order_problem(order: OrderSnapshot) -> str | None:
    """Why the row itself cannot be re-placed (rule 6), or None."""
    if order.side not in SIDES:
        return f"side {order.side!r} is not BUY or SELL"
    if order.order_type not in ORDER_TYPES:
        return f"order_type {order.order_type!r} is not one of {', '.join(sorted(ORDER_TYPES))}"
    if not _positive_finite(order.quantity):
        return f"quantity {order.quantity!r} is not a positive finite number"
    if order.order_type in LIMIT_LIKE and not _positive_finite(order.limit_price):
        return f"{order.order_type} needs a positive finite limit_price, got {order.limit_price!r}"
    return None


def chain_attempts(params: Mapping[str, Any]) -> int | None:
    """Replacements already made along this order's chain; None when unreadable."""
    recovery = params.get("auto_recovery")
    if not isinstance(recovery, Mapping) or "attempts" not in recovery:
        return 0
    attempts = recovery["attempts"]
    if type(attempts) is not int or attempts < 0:
        return None
    return attempts


def submit_in_flight(order: OrderSnapshot, *, now: datetime) -> bool:
    """Rule 5: a pending submit command the bridge may still execute.

    The bridge executes a command until its expires_at, whatever new_timeout_seconds says;
    without a readable one, until requested_at (else the row's updated_at) plus the 120 s
    the backend writes into every command.
    """
    command = submit_command_get(order.params)
    if command is None or not command.pending:
        return False
    if command.expires_at is not None:
        return now < command.expires_at
    requested = command.requested_at or order.updated_at or order.created_at
    return (now - requested).total_seconds() < COMMAND_TTL_SECONDS


def submit_in_flight_detail(order: OrderSnapshot) -> str:
    """The pending command of params.submit_command: its id, its file and when it expires."""
    command = submit_command_get(order.params)
    assert command is not None  # only asked about an order submit_in_flight() holds
    expires = command.expires_at
    if expires is None:
        requested = command.requested_at or order.updated_at or order.created_at
        expires = requested + timedelta(seconds=COMMAND_TTL_SECONDS) if requested is not None else None
    return in_flight_text(command_id=command.command_id, path=command.command_path, expires=expires)


def backend_owner(order: OrderSnapshot) -> str | None:
    """Rule 3b: which of the backend's own ways may still send the order; None when none.

    A run order is its run's until the run has ended: the run may send it from its intent
    file, its leader dispatch, or a fallback executor that relaunches the whole intent file,
    and a local cancel stops none of them. A direct order is the backend's direct-order
    loop's while its retry is pending, or while a leader submit command is pending: the loop
    sends it again at any age, and a cancel that races it loses.
    """
    if order.run_id is not None:
        status = order.run_status
        if status is not None and status.strip().lower() not in TERMINAL_RUN_STATUSES:
            return MSG_RUN_OWNS.format(run_id=order.run_id, status=status)
        return None
    retry = order.params.get("direct_retry")
    if isinstance(retry, Mapping) and retry.get("pending"):  # the loop's own truthiness
        return MSG_RETRY_OWNS
    command = order.params.get("submit_command")
    if isinstance(command, Mapping) and command.get("source") in (None, "leader_command"):
        parsed = submit_command_get(order.params)
        if parsed is not None and parsed.pending:
            return MSG_LEADER_OWNS
    return None


def price_deviation_pct(*, quote: float, limit_price: float) -> Decimal:
    # Decimal of the repr: 101.5 vs 100 is exactly 1.5, not 1.4999999999999.
    limit = Decimal(repr(limit_price))
    return abs(Decimal(repr(quote)) - limit) / limit * 100


def candidate_problem(
    order: OrderSnapshot, *, settings: AutoRecoveryConfig, now: datetime
) -> NotCandidate | None:
    """Why `order` is not a sweep candidate (mirrors selectors.stale_order_list), or None."""
    if order.status != "NEW":
        return NotCandidate.NOT_NEW
    if order.ib_order_id is not None or order.ib_perm_id is not None:
        return NotCandidate.ACKNOWLEDGED
    if (order.filled_quantity or 0) != 0:
        return NotCandidate.FILLED
    intent = order.params.get("intent_only")
    if intent is True or intent == "true":  # as the SQL filter reads it (1 is not true there)
        return NotCandidate.INTENT_ONLY
    if (now - order.created_at).total_seconds() < settings.new_timeout_seconds:
        return NotCandidate.TOO_YOUNG
    return None


def sweep_wide_skip(*, gates: GateState, settings: AutoRecoveryConfig) -> tuple[Reason, str | None] | None:
    """Rules 1, 1b, 1c, 2 and 2b: the ones that stop every order of a sweep alike."""
    if not settings.enabled:
        return Reason.DISABLED, None
    if gates.in_blackout:
        return Reason.BLACKOUT, None
    skew = clock_skew_text(gates)
    if skew is not None:
        return Reason.CLOCK_SKEW, skew
    if not gates.ib_reachable:
        return Reason.IB_UNREACHABLE, None
    if gates.bridge_problem is not None:
        return Reason.BROKER_EVIDENCE_UNAVAILABLE, gates.bridge_problem
    return None


def sweep_gate_blocking(
    *, gates: GateState, settings: AutoRecoveryConfig, ib_probed: bool
) -> tuple[Reason, str | None] | None:
    """The sweep-wide gate that keeps a run from acting (rules 1c, 2, 2b), or None.

    Rules 1 and 1b are ops' choice, not a block. A gateway not probed (no candidate to
    decide) is not known to be down.
    """
    if not ib_probed:
        gates = replace(gates, ib_reachable=True)
    wide = sweep_wide_skip(gates=gates, settings=settings)
    if wide is None or wide[0] in (Reason.DISABLED, Reason.BLACKOUT):
        return None
    return wide


def age_text_short(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def clock_skew_text(gates: GateState) -> str | None:
    """Why the two clocks disagree too much to act on ages (rule 1c), or None when they agree."""
    skew = gates.clock_skew_seconds
    if skew is None or abs(skew) <= gates.clock_tolerance_seconds:
        return None
    ahead = "ahead of" if skew > 0 else "behind"
    return (
        f"the database's clock is {abs(skew):.1f} s {ahead} this host's "
        f"(tolerance {gates.clock_tolerance_seconds:g} s)"
    )


def decide(
    order: OrderSnapshot, *, gates: GateState, settings: AutoRecoveryConfig, now: datetime
) -> Decision:
    """The first rule of the table that matches decides."""
    age = round((now - order.created_at).total_seconds(), 3)
    attempts = chain_attempts(order.params)
    base = {"age_seconds": age, "attempt": attempts if attempts is not None else -1}

    def skip(reason: Reason, detail: str | None = None) -> Decision:
        return Decision(Action.SKIP, reason, detail=detail, **base)

    wide = sweep_wide_skip(gates=gates, settings=settings)
    if wide is not None:
        return skip(*wide)
    if age < -gates.clock_tolerance_seconds:
        # Written "in the future": a clock or a time zone is wrong, so its age means nothing.
        return skip(Reason.CLOCK_SKEW, f"created {age_text_short(-age)} after this host's now")
    if order.project_id is not None and (order.project_id, order.mode) in gates.halted:
        return skip(Reason.GUARD_HALTED, f"project {order.project_id} ({order.mode}) is halted")
    owner = backend_owner(order)
    if owner is not None:
        return skip(Reason.OWNED_BY_BACKEND, owner)
    evidence = gates.evidence.get(order.id)
    broker = _broker_objection(order, evidence, settings=settings, now=now)
    if broker is not None:
        reason, detail = broker
        return Decision(
            Action.SKIP, reason, detail=detail, evidence=evidence.as_dict() if evidence else None, **base
        )
    if evidence is not None and evidence.closed is not None:
        # Rule 5b: every tag's last event is terminal and nothing was filled. Cancelling
        # writes down what the broker already did; placing it again is not what anyone asked.
        detail = f"closed at the broker: {evidence.closed.describe()}"
        return Decision(
            Action.CANCEL, Reason.CLOSED_AT_BROKER, detail=detail, evidence=evidence.as_dict(), **base
        )
    decision = _recovery_decide(order, gates=gates, settings=settings, attempts=attempts, base=base, now=now)
    if evidence is not None and evidence.submit_rejected and evidence.submit_result is not None:
        # Said where the order's fate is shown: its submit failed, which is why it may go.
        note = f"its submit failed: {evidence.submit_result.describe()}"
        detail = f"{decision.detail}; {note}" if decision.detail else note
        return replace(decision, detail=detail, evidence=evidence.as_dict())
    return decision


def _recovery_decide(
    order: OrderSnapshot,
    *,
    gates: GateState,
    settings: AutoRecoveryConfig,
    attempts: int | None,
    base: dict[str, Any],
    now: datetime,
) -> Decision:
    """Rules 6 to 11: the order is stale and the broker does not have it."""

    def cancel(reason: Reason, detail: str | None = None, **extra: Any) -> Decision:
        return Decision(Action.CANCEL, reason, detail=detail, **base, **extra)

    problem = order_problem(order)
    if problem is not None:
        return cancel(Reason.INVALID_ORDER, problem)
    if attempts is None:
        return cancel(Reason.RETRIES_EXHAUSTED, "params.auto_recovery.attempts is unreadable")
    if attempts >= settings.max_auto_retries:
        return cancel(Reason.RETRIES_EXHAUSTED, f"{attempts} of {settings.max_auto_retries} used")
    created_on, today = trade_date_for(order.created_at), trade_date_for(now)
    if settings.replace_same_trading_day_only and created_on < today:
        return cancel(Reason.STALE_INTENT, f"created on {created_on}, today is {today} in New York")
    if order.run_id is not None:
        # Rule 7c: the run has ended (rule 3b); what it left is the backend's to resume.
        if not settings.replace_run_orders:
            return cancel(
                Reason.RUN_ORDER_NOT_REPLACED, f"an order of run {order.run_id}; replace_run_orders is off"
            )
        resume = partial_resume_pending(order.run or RunPlacement(), config=settings)
        if resume is not None:
            return cancel(Reason.RUN_ORDER_NOT_REPLACED, resume)
    if not gates.market_open and not settings.allow_replace_outside_rth:
        return cancel(Reason.OUTSIDE_RTH)
    quote = _quote_for(order.symbol, gates.quotes)
    if order.order_type in LIMIT_LIKE and settings.max_price_deviation_pct > 0:
        if quote is None:
            return cancel(Reason.QUOTE_UNAVAILABLE, f"no fresh quote for {order.symbol!r}")
        deviation = price_deviation_pct(quote=quote, limit_price=order.limit_price)
        shown = _shown_pct(deviation)
        if deviation > Decimal(repr(settings.max_price_deviation_pct)):
            return cancel(Reason.PRICE_DEVIATION, quote=quote, deviation_pct=shown)
    else:
        shown = None
    # Rule 10b: the backend's retry path skips the checks its new-order path makes, so a
    # replacement it would not send leaves the order NEW, untouched, for a later sweep.
    sender = gates.sender.order_problem(order_mode=order.mode) if gates.sender else MSG_NOT_READ
    if sender is not None:
        return Decision(
            Action.SKIP,
            Reason.BACKEND_SENDER_UNAVAILABLE,
            detail=sender,
            quote=quote,
            deviation_pct=shown,
            **base,
        )
    return Decision(Action.REPLACE, Reason.REPLACED, quote=quote, deviation_pct=shown, **base)


def _broker_objection(
    order: OrderSnapshot, evidence: OrderEvidence | None, *, settings: AutoRecoveryConfig, now: datetime
) -> tuple[Reason, str] | None:
    """Rules 4 and 5: what the broker's files say, in order of what they prove."""
    if evidence is None:
        return Reason.BROKER_EVIDENCE_UNAVAILABLE, "no broker evidence was gathered for this order"
    if evidence.open is not None:
        return Reason.OPEN_AT_BROKER, evidence.open.describe()
    if evidence.seen is not None:
        return Reason.SEEN_BY_BROKER, evidence.seen.describe()
    if evidence.unavailable is not None:
        return Reason.BROKER_EVIDENCE_UNAVAILABLE, evidence.unavailable
    if evidence.unreadable:
        return Reason.BROKER_EVIDENCE_UNREADABLE, "; ".join(evidence.unreadable)
    if evidence.waiting_command is not None:
        # Written before the order's params name it, or marked superseded: the bridge may run it.
        return Reason.SUBMIT_IN_FLIGHT, evidence.waiting_command.describe()
    if evidence.submit_rejected:
        return None  # the bridge answered the submit with a failure: nothing is in flight
    if submit_in_flight(order, now=now):
        return Reason.SUBMIT_IN_FLIGHT, submit_in_flight_detail(order)
    return None


def _shown_pct(deviation: Decimal) -> float | None:
    """The deviation as a finite float for reports; None when a float cannot hold it.

    Not round(deviation, 4): quantizing needs more digits than the Decimal context has
    once a wild quote or limit makes the deviation huge (1e24 % and up), and an inf
    would make the audit row invalid JSON. The rule itself compares the exact Decimal.
    """
    value = float(deviation)
    return round(value, 4) if math.isfinite(value) else None


def _quote_for(symbol: Any, quotes: Mapping[str, float] | None) -> float | None:
    if quotes is None or not isinstance(symbol, str):
        return None
    return quotes.get(symbol_key(symbol))
