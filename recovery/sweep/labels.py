"""Plain words for what happens to an order: one label per reason and not-a-candidate code.

The admin shows an order's fate in five places (orders list, preview, status page, audit,
order detail); all of them call these functions, so the words never drift apart. Each
label leads with what happens ("Cancel only", "Left alone", ...), then why, with the
inputs behind it (attempt, quote, deviation); the code itself is shown beside it by the
caller, for searching. Pure: plain values in, text out.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from recovery.gates import bridge
from recovery.sweep.decisions import Action, NotCandidate, Reason

REPLACE, CANCEL_ONLY, LEFT_ALONE, FAILED = (
    "Cancel and re-place",
    "Cancel only",
    "Left alone",
    "Failed, stays NEW",
)
NOT_A_CANDIDATE = "Not a candidate"

# What each reason does to the order, as a heading.
REASON_ACTION: dict[Reason, str] = {
    Reason.DISABLED: LEFT_ALONE,
    Reason.BLACKOUT: LEFT_ALONE,
    Reason.CLOCK_SKEW: LEFT_ALONE,
    Reason.IB_UNREACHABLE: LEFT_ALONE,
    Reason.GUARD_HALTED: LEFT_ALONE,
    Reason.OWNED_BY_BACKEND: LEFT_ALONE,
    Reason.OPEN_AT_BROKER: LEFT_ALONE,
    Reason.SEEN_BY_BROKER: LEFT_ALONE,
    Reason.BROKER_EVIDENCE_UNREADABLE: LEFT_ALONE,
    Reason.BROKER_EVIDENCE_UNAVAILABLE: LEFT_ALONE,
    Reason.SUBMIT_IN_FLIGHT: LEFT_ALONE,
    Reason.CLOSED_AT_BROKER: CANCEL_ONLY,
    Reason.INVALID_ORDER: CANCEL_ONLY,
    Reason.RETRIES_EXHAUSTED: CANCEL_ONLY,
    Reason.STALE_INTENT: CANCEL_ONLY,
    Reason.RUN_ORDER_NOT_REPLACED: CANCEL_ONLY,
    Reason.OUTSIDE_RTH: CANCEL_ONLY,
    Reason.QUOTE_UNAVAILABLE: CANCEL_ONLY,
    Reason.PRICE_DEVIATION: CANCEL_ONLY,
    Reason.BACKEND_SENDER_UNAVAILABLE: LEFT_ALONE,
    Reason.REPLACED: REPLACE,
    Reason.CIRCUIT_OPEN: LEFT_ALONE,
    Reason.REPLACEMENT_ID_TAKEN: CANCEL_ONLY,
    Reason.CHANGED_CONCURRENTLY: LEFT_ALONE,
    Reason.WRITE_FAILED: FAILED,
}

# Why, in plain words; filled in by reason_label from the order's inputs.
REASON_WHY: dict[Reason, str] = {
    Reason.DISABLED: "auto-recovery is switched off",
    Reason.BLACKOUT: "inside a blackout window",
    Reason.CLOCK_SKEW: "the database's clock and this host's disagree, so ages cannot be trusted",
    Reason.IB_UNREACHABLE: "the IB gateway is unreachable",
    Reason.GUARD_HALTED: "its project is halted by the risk guard today",
    Reason.OWNED_BY_BACKEND: "the trading backend may still send it",
    Reason.OPEN_AT_BROKER: "live at the broker (listed in open_orders.json)",
    Reason.SEEN_BY_BROKER: "the broker's files show it",
    Reason.BROKER_EVIDENCE_UNREADABLE: "a broker file could not be read",
    Reason.BROKER_EVIDENCE_UNAVAILABLE: "the broker's files are not reachable from this host",
    Reason.SUBMIT_IN_FLIGHT: "a submit is still in flight",
    Reason.CLOSED_AT_BROKER: "the broker closed it without a fill",
    Reason.INVALID_ORDER: "the order row is unusable",
    Reason.RETRIES_EXHAUSTED: "retries used up",
    Reason.STALE_INTENT: "created on an earlier trading day",
    Reason.RUN_ORDER_NOT_REPLACED: "an order of a finished run: the backend resumes what a run left",
    Reason.OUTSIDE_RTH: "outside NYSE regular hours",
    Reason.QUOTE_UNAVAILABLE: "no fresh quote",
    Reason.PRICE_DEVIATION: "the quote is too far from the limit",
    Reason.BACKEND_SENDER_UNAVAILABLE: "the trading backend would not send its replacement now",
    Reason.REPLACED: "nothing stops it",
    Reason.CIRCUIT_OPEN: "circuit breaker open",
    Reason.REPLACEMENT_ID_TAKEN: "the client id its replacement would get is already taken",
    Reason.CHANGED_CONCURRENTLY: "the order changed meanwhile",
    Reason.WRITE_FAILED: "the write failed",
}

NOT_CANDIDATE_WHY: dict[NotCandidate, str] = {
    NotCandidate.NOT_NEW: "status is not NEW",
    NotCandidate.ACKNOWLEDGED: "the broker acknowledged it (it has broker ids)",
    NotCandidate.FILLED: "it has a fill",
    NotCandidate.TOO_YOUNG: "not stale yet (younger than the timeout)",
    NotCandidate.INTENT_ONLY: "an intent row that Lean executes itself",
    NotCandidate.NOT_FOUND: "no such order",
    NotCandidate.CHANGED_MEANWHILE: "it changed since the page was shown",
}

# Why a bridge file (quotes.json, open_orders.json) gives no data, for its problem code.
BRIDGE_PROBLEM_WHY: dict[str, str] = {
    bridge.PROBLEM_MISSING: "the file is missing",
    bridge.PROBLEM_UNREADABLE: "the file cannot be read",
    bridge.PROBLEM_INVALID_JSON: "the file is not valid JSON",
    bridge.PROBLEM_BAD_SHAPE: "the file is not in the bridge's format",
    bridge.PROBLEM_MARKED_STALE: "the bridge marked it stale",
    bridge.PROBLEM_NO_TIMESTAMP: "it carries no refreshed_at/updated_at time",
    bridge.PROBLEM_TOO_OLD: "older than its age limit",
    bridge.PROBLEM_FUTURE_TIMESTAMP: "its time lies in the future",
}

assert set(REASON_ACTION) == set(Reason) == set(REASON_WHY), "every reason needs a label"
assert set(NOT_CANDIDATE_WHY) == set(NotCandidate), "every not-a-candidate code needs a label"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _pct(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") + "%"


def _price(value: float) -> str:
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def age_text(seconds: Any) -> str:
    """ "45 s", "4 min", "2 h 05 min", "3 d 4 h": exact enough to act on, short enough to scan."""
    value = _number(seconds)
    if value is None or value < 0:
        return "-"
    whole = int(value)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


MOMENT_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def moment_text(value: Any) -> str:
    """ "2026-12-07 14:05:30 UTC", the one format of every admin page, for an aware datetime or
    an ISO-8601 string (as the reports carry them); anything else is shown as it is."""
    moment = value
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(moment, dt.datetime):
        return "-" if value is None else str(value)
    if moment.tzinfo is None:  # the backend's naive UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime(MOMENT_FORMAT)


def bridge_file_text(gate: Mapping[str, Any], *, unit: str) -> str:
    """A bridge file as a report has it: "12 s old, 3 symbols" or "no data: older than its age
    limit, 1 d 2 h old (too_old)"."""
    age = age_text(gate.get("age_seconds"))
    if gate.get("available"):
        count = gate.get("items")
        return f"{age} old, {count} {unit}{'' if count == 1 else 's'}"
    problem = str(gate.get("problem"))
    why = BRIDGE_PROBLEM_WHY.get(problem, problem)
    if age != "-":
        why += f", {age} old"
    return f"no data: {why} ({problem})"


def _why(reason: Reason, outcome: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    why = REASON_WHY[reason]
    attempt, limit = outcome.get("attempt"), settings.get("max_auto_retries")
    quote, deviation = _number(outcome.get("quote")), _number(outcome.get("deviation_pct"))
    max_deviation = _number(settings.get("max_price_deviation_pct"))
    if reason is Reason.RETRIES_EXHAUSTED and type(attempt) is int and attempt >= 0 and type(limit) is int:
        return f"{why} ({attempt} of {limit})"
    if reason is Reason.PRICE_DEVIATION and deviation is not None and max_deviation is not None:
        return f"quote {_price(quote or 0)} is {_pct(deviation)} from the limit (max {_pct(max_deviation)})"
    if reason is Reason.REPLACED and deviation is not None:
        return f"quote {_price(quote or 0)}, {_pct(deviation)} from the limit"
    detail = outcome.get("detail")
    if isinstance(detail, str) and detail and reason is Reason.SUBMIT_IN_FLIGHT:
        return f"{why}: {detail}"  # "...: command c1 (commands/c1.json), expires ... UTC"
    if isinstance(detail, str) and detail and reason is not Reason.REPLACED:
        return f"{why} ({detail})"
    return why


def reason_label(outcome: Mapping[str, Any], *, settings: Mapping[str, Any] | None = None) -> str:
    """ "Cancel only: retries used up (1 of 1)" for an outcome as OrderOutcome.as_dict() has it.

    `settings`: the settings of that sweep (as_dict()), for the limits named in the label.
    An unknown code (a newer sweep's audit row) is shown as itself.
    """
    settings = settings or {}
    try:
        reason = Reason(outcome.get("reason"))
    except ValueError:
        return str(outcome.get("reason"))
    text = f"{REASON_ACTION[reason]}: {_why(reason, outcome, settings)}"
    held = outcome.get("held_by_breaker")
    if reason is Reason.CIRCUIT_OPEN and held:
        text += f"; without it: {reason_label({**outcome, 'reason': held}, settings=settings)}"
    return text


def would_be_action(outcome: Mapping[str, Any]) -> str:
    """The action an outcome stands for (replace / cancel / skip), the breaker's hold aside."""
    reason = outcome.get("held_by_breaker") or outcome.get("reason")
    heading = REASON_ACTION.get(Reason(reason)) if reason in set(Reason) else None
    return {REPLACE: Action.REPLACE, CANCEL_ONLY: Action.CANCEL}.get(heading or "", Action.SKIP).value


def not_candidate_label(why: Any, *, status: str | None = None) -> str:
    """ "Not a candidate: status is FILLED, not NEW" for a LeftAlone.as_dict()['why']."""
    try:
        code = NotCandidate(why)
    except ValueError:
        return f"{NOT_A_CANDIDATE}: {why}"
    text = NOT_CANDIDATE_WHY[code]
    if code is NotCandidate.NOT_NEW and status:
        text = f"status is {status}, not NEW"
    return f"{NOT_A_CANDIDATE}: {text}"


def settings_text(settings: Mapping[str, Any]) -> dict[str, str]:
    """Each setting as text, never a Python repr: blackout windows as "23:45–00:15"."""
    shown: dict[str, str] = {}
    for key, value in settings.items():
        if key == "blackout_windows" and isinstance(value, list):
            windows = [
                f"{w.get('start')}–{w.get('end')}" if isinstance(w, Mapping) else str(w) for w in value
            ]
            shown[key] = ", ".join(windows) + " (New York)" if windows else "none"
        elif isinstance(value, bool):
            shown[key] = "yes" if value else "no"
        else:
            shown[key] = str(value)
    return shown
