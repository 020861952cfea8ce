"""Has the backend picked up a replacement, and is its chain a double? In plain words (pure).

Every replacement the sweep writes is a direct order handed to the trading backend's
direct-order loop: no run, `params.direct_retry.pending` set, nothing tried yet. What the
backend then writes into the row says how far it got:

  NEW, direct_retry pending, never tried       waiting for the backend's sender
  NEW, submit_command pending                  picked up: submit command sent, waiting for the bridge
  NEW or REJECTED, direct_retry pending after  the backend will retry at next_retry_at (last_reason)
    a try
  SUBMITTED, PARTIALLY_FILLED, FILLED          sent: the broker has it
  REJECTED                                     rejected (by the bridge: submit_command.status)
  SKIPPED                                      the backend's open-orders sync gave up on it: never sent

`pending` is read as the backend reads it: direct_retry's with Python's bool() (the
string "false" is true there), submit_command's with its _as_bool (true, or 1/true/yes/y/on).

A double: an order auto-recovery cancelled that came back to life afterwards (the
backend's command results or fills turned it SUBMITTED, PARTIALLY_FILLED or FILLED, or
gave it a broker id or a fill) while a later replacement of its chain is live (neither
CANCELED, REJECTED nor SKIPPED): both may be at the broker.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from recovery.db.timestamps import iso_parse
from recovery.gates.evidence import RESULT_REJECTED, RESULT_SUBMITTED
from recovery.sweep.chain import chain_root, replacement_client_order_id
from recovery.sweep.labels import age_text

# A replacement the backend's loop (every ~2 s) has not taken this long after it was written:
# its sender is not running.
PICKUP_GRACE_SECONDS = 120
# The backend gives a leader submit command this long before it sends through its own executor.
LEADER_SUBMIT_TIMEOUT_SECONDS = 30

ALIVE_STATUSES = frozenset({"SUBMITTED", "PARTIALLY_FILLED", "PARTIAL", "FILLED"})
ENDED_STATUSES = frozenset({"CANCELED", "CANCELLED", "REJECTED", "SKIPPED"})
SENT_STATUSES = frozenset({"SUBMITTED", "PARTIALLY_FILLED", "PARTIAL"})
# The backend's words for a failed try, in plain words.
RETRY_REASONS = {
    "client_id_busy": "no free IB client id",
    "launch_failed": "its executor did not start",
    "auto_retry_error": "an error in its retry loop",
}
# The backend's _as_bool: these words (any case, stripped) are true.
_TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})


class Stage(StrEnum):
    WAITING = "waiting"  # NEW, direct_retry pending, never tried, within the grace
    NOT_PICKED_UP = "not_picked_up"  # the same, past the grace: the sender is not running
    NOT_HANDED = "not_handed"  # NEW, and nothing in the row makes the backend send it
    IN_FLIGHT = "in_flight"  # NEW, a submit command the bridge has not answered
    ANSWERED = "answered"  # NEW, the bridge answered; the row not updated yet
    RETRY = "retry"  # NEW or REJECTED, direct_retry pending after a failed try
    SENT = "sent"
    FILLED = "filled"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OrderFacts:
    """The columns of a trade_orders row these functions read, as the row holds them."""

    id: int
    client_order_id: str
    status: Any
    params: Any
    created_at: dt.datetime | None = None
    run_id: int | None = None
    ib_order_id: int | None = None
    filled_quantity: Any = None
    quantity: Any = None
    rejected_reason: Any = None

    @property
    def state(self) -> str:
        return status_of(self.status)


# The columns, in OrderFacts' order: values_list(*FACT_COLUMNS) rows are OrderFacts(*row).
FACT_COLUMNS = tuple(f.name for f in fields(OrderFacts))


@dataclass(frozen=True)
class Pickup:
    """How far the backend got with a replacement: words first, its own state second."""

    stage: Stage
    label: str
    code: str  # the backend's direct_retry / submit_command as stored, compact
    incident: bool  # ops must act: never picked up in time, or ended without reaching the broker


@dataclass(frozen=True)
class Double:
    """Orders auto-recovery cancelled that came back to life while a later replacement is live."""

    replacement: OrderFacts
    revived: tuple[OrderFacts, ...]

    @property
    def text(self) -> str:
        revived = ", ".join(f"#{o.id} ({o.client_order_id}) is {life_text(o)}" for o in self.revived)
        r = self.replacement
        return (
            "Both the original and its replacement may be at the broker: "
            f"{revived} after auto-recovery cancelled it, "
            f"and its replacement #{r.id} ({r.client_order_id}) is {r.state or 'without a status'}."
        )


def status_of(value: Any) -> str:
    return str(value or "").strip().upper()


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float:
    """A quantity column or JSON value as a float; 0 when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) else 0.0


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _clock(moment: dt.datetime, *, now: dt.datetime) -> str:
    """ "16:02:20 UTC", with the date when it is not today's."""
    moment, now = moment.astimezone(dt.UTC), now.astimezone(dt.UTC)
    return f"{moment:%H:%M:%S} UTC" if moment.date() == now.date() else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def direct_retry_pending(value: Any) -> bool:
    """direct_retry.pending as the backend's loop reads it: Python's bool()."""
    return bool(value)


def submit_pending(value: Any) -> bool:
    """submit_command.pending as the backend reads it (_as_bool): true, or 1/true/yes/y/on."""
    if isinstance(value, bool):
        return value
    return value is not None and str(value).strip().lower() in _TRUE_WORDS


def replacement_origin(params: Any) -> int | None:
    """The order a replacement was made from (params.auto_recovery.origin_order_id), or None."""
    origin = _object(_object(params).get("auto_recovery")).get("origin_order_id")
    return origin if type(origin) is int else None


def earlier_client_ids(order: OrderFacts) -> list[str]:
    """The client ids of the chain's orders before this replacement: its root, then -r1 ... -r(n-1)."""
    attempts = _object(_object(order.params).get("auto_recovery")).get("attempts")
    if type(attempts) is not int or attempts < 1:
        return []
    _, root = chain_root(order_id=order.id, client_order_id=order.client_order_id, params=order.params)
    earlier = [root] + [
        replacement_client_order_id(root_client_order_id=root, attempt=a) for a in range(1, attempts)
    ]
    return [c for c in earlier if c != order.client_order_id]


def came_back(order: OrderFacts) -> bool:
    """An order auto-recovery cancelled that the backend has since booked at the broker."""
    return (
        order.state in ALIVE_STATUSES or order.ib_order_id is not None or _number(order.filled_quantity) > 0
    )


def live(order: OrderFacts) -> bool:
    """A replacement that may be at the broker: not CANCELED, REJECTED or SKIPPED."""
    return order.state not in ENDED_STATUSES


def double_get(replacement: OrderFacts, earlier: Sequence[OrderFacts]) -> Double | None:
    """The double of this replacement's chain, if one of its earlier orders came back to life."""
    if not live(replacement):
        return None
    revived = tuple(o for o in earlier if o.id != replacement.id and came_back(o))
    return Double(replacement, revived) if revived else None


def life_text(order: OrderFacts) -> str:
    """ "SUBMITTED again (broker id 555)", "CANCELED, filled 3 at the broker" """
    extra = []
    if order.ib_order_id is not None:
        extra.append(f"broker id {order.ib_order_id}")
    if _number(order.filled_quantity) > 0:
        extra.append(f"filled {_number(order.filled_quantity):g}")
    state = order.state or "without a status"
    text = f"{state} again" if state in ALIVE_STATUSES else state
    return f"{text} ({', '.join(extra)})" if extra else text


# --- the backend's state, as stored --------------------------------------------------------------


def _code(params: Any, *, status: str) -> str:
    """ "direct_retry.pending=true count=0", "submit_command.pending=true command_id=abc", ..."""
    if not isinstance(params, Mapping):
        return f"status {status or '-'}; params is {type(params).__name__}, not an object"
    parts = [f"status {status or '-'}"]
    retry = params.get("direct_retry")
    if isinstance(retry, Mapping):
        pending = retry.get("pending")
        shown = f"direct_retry.pending={_json(pending)}"
        if not isinstance(pending, bool) and pending is not None:
            shown += f" ({'true' if direct_retry_pending(pending) else 'false'} to the backend)"
        for key in ("count", "last_reason", "next_retry_at"):
            if key in retry:
                shown += f" {key}={_json(retry[key])}"
        parts.append(shown)
    elif retry:
        parts.append(f"direct_retry={_json(retry)[:60]} (not an object)")
    else:
        parts.append("no direct_retry")
    command = params.get("submit_command")
    if isinstance(command, Mapping):
        pending = command.get("pending")
        shown = f"submit_command.pending={_json(pending)}"
        if not isinstance(pending, bool) and pending is not None:
            shown += f" ({'true' if submit_pending(pending) else 'false'} to the backend)"
        for key in ("status", "command_id"):
            if key in command:
                shown += f" {key}={_json(command[key])}"
        parts.append(shown)
    reason = params.get("reason")
    if status == "REJECTED" and isinstance(reason, str) and reason:
        parts.append(f"reason={_json(reason)}")
    return "; ".join(parts)


def _retry_label(retry: Mapping[str, Any], *, now: dt.datetime, prefix: str = "") -> str:
    reason = retry.get("last_reason")
    reason_text = str(reason) if reason not in (None, "") else "no reason given"
    words = RETRY_REASONS.get(reason_text)
    why = f"{words} ({reason_text})" if words else reason_text
    due = iso_parse(retry.get("next_retry_at"))
    if due is None:
        return f"{prefix}the backend will retry on its next pass ({why})"
    if due > now:
        return f"{prefix}the backend will retry at {_clock(due, now=now)} ({why})"
    return (
        f"{prefix}the backend's retry was due at {_clock(due, now=now)} ({why}): it retries on its next pass"
    )


def _tried(retry: Mapping[str, Any]) -> bool:
    """Whether the backend's loop has tried it: it counts and stamps every try."""
    count = retry.get("count")
    counted = _number(count) > 0 if not isinstance(count, str) else count.strip() not in ("", "0")
    return counted or bool(retry.get("last_at")) or bool(retry.get("last_reason"))


def _fill_text(order: OrderFacts) -> str:
    filled, quantity = _number(order.filled_quantity), _number(order.quantity)
    return f"{filled:g} of {quantity:g}" if quantity else f"{filled:g}"


def pickup_get(order: OrderFacts, *, now: dt.datetime) -> Pickup:
    """How far the backend got with this replacement, as its row says now."""
    status = order.state
    params = order.params
    code = _code(params, status=status)
    facts = _object(params)
    retry_raw = facts.get("direct_retry")
    retry = _object(retry_raw)
    command = _object(facts.get("submit_command"))
    filled = _number(order.filled_quantity) > 0
    age = (now - order.created_at).total_seconds() if order.created_at is not None else None
    written = f"written {age_text(age)} ago" if age is not None and age >= 0 else "written just now"
    late = age is not None and age >= PICKUP_GRACE_SECONDS

    def stage(kind: Stage, label: str, *, incident: bool = False) -> Pickup:
        return Pickup(kind, label, code, incident)

    if status == "NEW":
        if submit_pending(command.get("pending")):
            requested = iso_parse(command.get("requested_at"))
            label = "picked up by the backend: submit command sent, waiting for the bridge"
            if requested is not None:
                label += f" (sent {age_text(max((now - requested).total_seconds(), 0))} ago)"
            expires = iso_parse(command.get("expires_at"))
            if expires is not None and expires <= now:
                label += f"; the command expired at {_clock(expires, now=now)} without an answer"
            return stage(Stage.IN_FLIGHT, label)
        if order.run_id is not None:
            why = (
                f"it belongs to run {order.run_id}, and the backend's direct-order loop sends only "
                "orders without a run"
            )
            return stage(Stage.NOT_HANDED, f"nothing will send it: {why} ({written})", incident=late)
        if retry_raw and not isinstance(retry_raw, Mapping):
            why = "its direct_retry is not an object the backend can read"
            return stage(Stage.NOT_HANDED, f"nothing will send it: {why} ({written})", incident=late)
        if direct_retry_pending(retry.get("pending")):
            if _tried(retry):
                return stage(Stage.RETRY, _retry_label(retry, now=now))
            if late:
                label = (
                    f"not picked up by the backend's sender, {written}: its direct-order loop is not running"
                )
                return stage(Stage.NOT_PICKED_UP, label, incident=True)
            return stage(Stage.WAITING, f"waiting for the backend's sender ({written})")
        answer = command.get("status")
        if isinstance(answer, str) and answer.strip():
            answer = answer.strip().lower()
            if answer == RESULT_SUBMITTED:
                label = "the bridge sent it (submitted); the row says NEW until the backend's next pass"
            elif answer in RESULT_REJECTED:
                label = f"rejected by the bridge: {answer}; the row says NEW until the backend's next pass"
            else:
                label = f"the bridge answered {answer!r}; the row still says NEW"
            return stage(Stage.ANSWERED, label)
        why = (
            "its params are not a JSON object"
            if not isinstance(params, Mapping)
            else "direct_retry is not pending and no submit command is in flight"
        )
        return stage(Stage.NOT_HANDED, f"nothing will send it: {why} ({written})", incident=late)

    if status == "FILLED":
        return stage(Stage.FILLED, f"filled at the broker (FILLED, {_fill_text(order)})")
    if status in SENT_STATUSES:
        if filled:
            return stage(Stage.SENT, f"sent: partly filled at the broker, {_fill_text(order)} ({status})")
        return stage(Stage.SENT, f"sent: the broker has it ({status})")
    if status == "REJECTED":
        if direct_retry_pending(retry.get("pending")) and isinstance(retry_raw, Mapping):
            return stage(Stage.RETRY, _retry_label(retry, now=now, prefix="rejected; "))
        reason = facts.get("reason") or order.rejected_reason
        reason_text = str(reason).strip() if reason not in (None, "") else ""
        answer = command.get("status")
        answer = answer.strip().lower() if isinstance(answer, str) else ""
        if filled:
            label = f"rejected after a partial fill of {_fill_text(order)}: the broker had it"
        elif answer in RESULT_REJECTED:
            label = f"rejected by the bridge: {answer}"
            if reason_text and reason_text.lower() != answer:
                label += f" ({reason_text})"
        else:
            label = f"rejected by the backend: {reason_text or 'no reason given'}"
        return stage(Stage.REJECTED, label, incident=not filled)
    if status == "SKIPPED":
        if filled:
            return stage(Stage.SKIPPED, f"skipped by the backend after a partial fill of {_fill_text(order)}")
        return stage(Stage.SKIPPED, "skipped by the backend: never sent", incident=True)
    if status in ("CANCELED", "CANCELLED"):
        fill = f" after a partial fill of {_fill_text(order)}" if filled else ""
        if facts.get("auto_recovery_cancel"):
            return stage(Stage.CANCELLED, f"cancelled by auto-recovery{fill}: it went stale too")
        return stage(Stage.CANCELLED, f"cancelled by the backend or the broker{fill} ({status})")
    return stage(Stage.UNKNOWN, f"status {status or 'empty'}: not one this page knows")
