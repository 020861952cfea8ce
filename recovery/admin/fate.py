"""What happens to each order, as rows for the admin's pages (list, preview, status page, audit).

Built from a sweep's report (SweepResult.as_dict(), or a sweep audit row's detail) and,
when the page needs symbol, side and size, the orders themselves read in one query.
The words come from recovery.sweep.labels, so every page says the same thing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recovery import selectors
from recovery.db.models import TradeOrder
from recovery.services import sweep_run
from recovery.sweep.decisions import Reason
from recovery.sweep.labels import (
    age_text,
    bridge_file_text,
    not_candidate_label,
    reason_label,
    settings_text,
    would_be_action,
)
from recovery.sweep.results import SweepResult


@dataclass(frozen=True)
class Fate:
    """One order's fate in plain words, with its code kept for searching."""

    action: str  # replace | cancel | skip | failed | none (not a candidate)
    label: str
    code: str


def _order_facts(order: TradeOrder | None) -> dict[str, Any]:
    if order is None:
        return {"symbol": "", "side": "", "quantity": None, "order_type": "", "limit_price": None}
    return {
        "symbol": order.symbol,
        "side": order.side,
        "quantity": order.quantity,
        "order_type": order.order_type,
        "limit_price": order.limit_price,
        "created_at": order.created_at,
    }


def outcome_fate(outcome: Mapping[str, Any], *, settings: Mapping[str, Any]) -> Fate:
    action = "failed" if outcome.get("reason") == "write_failed" else str(outcome.get("decision"))
    return Fate(action, reason_label(outcome, settings=settings), str(outcome.get("reason")))


def decision_rows(
    report: Mapping[str, Any], *, orders: Mapping[int, TradeOrder] | None = None
) -> list[dict[str, Any]]:
    """One row per decided order: the order's facts, then its fate and the inputs behind it."""
    settings = report.get("settings") or {}
    rows = []
    for outcome in report.get("orders") or []:
        if not isinstance(outcome, Mapping):
            continue
        order = (orders or {}).get(outcome.get("id"))  # type: ignore[arg-type]
        fate = outcome_fate(outcome, settings=settings)
        rows.append(
            {
                **outcome,
                **_order_facts(order),
                "fate": fate,
                "would_be": would_be_action(outcome),
                "age": age_text(outcome.get("age_seconds")),
            }
        )
    return rows


def left_alone_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {**alone, "label": not_candidate_label(alone.get("why"), status=alone.get("status"))}
        for alone in report.get("left_alone") or []
        if isinstance(alone, Mapping)
    ]


def settings_rows(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    return list(settings_text(report.get("settings") or {}).items())


def preview_orders(result: SweepResult) -> dict[int, TradeOrder]:
    """The orders a preview names, in one query (symbol, side, quantity, type, limit)."""
    ids = [o.id for o in result.orders] + [a.id for a in result.left_alone]
    return selectors.orders_by_id(ids) if ids else {}


def page_fates(orders: Sequence[TradeOrder], *, now: dt.datetime, actor: str) -> dict[int, Fate]:
    """What the sweep would do with each NEW order of a changelist page: one dry run.

    The dry run gathers the gates once for the page's stale orders; NEW orders that are
    not candidates come back as its left-alone list, labelled as such.
    """
    new_ids = [o.pk for o in orders if o.status == "NEW"]
    if not new_ids:
        return {}
    result = sweep_run(now=now, actor=actor, dry_run=True, order_ids=new_ids)
    report = result.as_dict()
    settings = report["settings"]
    fates = {o["id"]: outcome_fate(o, settings=settings) for o in report["orders"]}
    for alone in report["left_alone"]:
        label = not_candidate_label(alone["why"], status=alone.get("status"))
        fates[alone["id"]] = Fate("none", label, alone["why"])
    return fates


def _orders(count: int) -> str:
    return f"{count:,} stale order{'s' if count != 1 else ''}"


def preview_summary(report: Mapping[str, Any], *, stale_total: int | None = None) -> str:
    """ "3 stale orders: 1 to cancel and re-place, 1 to cancel only, 1 left alone."

    `stale_total`: the exact count of stale orders now (selectors.stale_order_total), for a
    run over the whole backlog: a run decides only its first orders (at most `limit` acted
    on), so the page says how many there are and how many this run leaves for later ones.
    """
    scanned, replaced = int(report.get("scanned") or 0), int(report.get("replaced") or 0)
    cancel_only = int(report.get("cancelled") or 0) - replaced
    counts = (
        f"{replaced:,} to cancel and re-place, {cancel_only:,} to cancel only, "
        f"{int(report.get('skipped') or 0):,} left alone"
    )
    if stale_total is not None and stale_total > scanned:
        text = (
            f"{_orders(stale_total)} now; this run decides {scanned:,} of them: {counts}; "
            f"the other {stale_total - scanned:,} wait for later runs"
        )
    else:
        text = f"{_orders(scanned)}: {counts}"
    if report.get("circuit_open"):
        text += f" (circuit breaker: {report.get('would_replace')} would be re-placed)"
    left = len(report.get("left_alone") or [])
    if left:
        text += f"; {left} selected order{'s are' if left != 1 else ' is'} not a candidate"
    return text + "."


NEAR_BREAKER = 0.8  # warn once a sweep would use this share of max_replacements_per_sweep


def preview_warnings(report: Mapping[str, Any]) -> list[str]:
    """The gates that matter for what is about to happen, as sentences; none when all is well."""
    gates, settings = report.get("gates") or {}, report.get("settings") or {}
    acting = int(report.get("cancelled") or 0)
    warnings = []
    if not settings.get("enabled", True):
        warnings.append("Auto-recovery is switched off (enabled = false): nothing will be changed.")
    if (gates.get("blackout") or {}).get("active"):
        window = gates["blackout"].get("window") or {}
        warnings.append(
            f"Inside the blackout window {window.get('start')}–{window.get('end')} (New York): "
            "nothing will be changed."
        )
    ib = gates.get("ib") or {}
    if ib.get("probed") and not ib.get("reachable"):
        warnings.append(f"The IB gateway is unreachable ({ib.get('detail')}): nothing will be changed.")
    opens = gates.get("open_orders") or {}
    if acting and not opens.get("available", True):
        warnings.append(
            f"open_orders.json gives {bridge_file_text(opens, unit='tag')}: the sweep cannot see which "
            f"orders are live at the broker, and {acting} order{'s are' if acting != 1 else ' is'} "
            "about to be cancelled."
        )
    quotes = gates.get("quotes") or {}
    if not quotes.get("available", True) and any(
        o.get("reason") == "quote_unavailable" for o in report.get("orders") or []
    ):
        warnings.append(
            f"quotes.json gives {bridge_file_text(quotes, unit='symbol')}: LMT and PEG_MID orders "
            "will be cancelled without a replacement."
        )
    limit, would = settings.get("max_replacements_per_sweep"), int(report.get("would_replace") or 0)
    if report.get("circuit_open"):
        warnings.append(
            f"Circuit breaker open: {would} orders would be re-placed, more than "
            f"max_replacements_per_sweep = {limit}."
        )
    elif type(limit) is int and would >= max(1, NEAR_BREAKER * limit):
        warnings.append(f"Near the circuit breaker: {would} of at most {limit} replacements per sweep.")
    for warning in report.get("settings_warnings") or []:
        key, why = warning.get("key"), warning.get("reason")
        warnings.append(f"Setting {key} is invalid ({why}): its default applies.")
    return warnings


def _promised(outcome: Mapping[str, Any]) -> tuple[str, str]:
    """(decision, reason) a confirmation promised for an outcome of its preview.

    An order the breaker held is promised what it would get without the breaker: the only
    run that follows such a preview is one whose confirmation passed the breaker.
    """
    held = outcome.get("held_by_breaker")
    if outcome.get("reason") == Reason.CIRCUIT_OPEN and held:
        return would_be_action(outcome), str(held)
    return str(outcome.get("decision")), str(outcome.get("reason"))


def decisions_key(outcomes: Sequence[Mapping[str, Any]]) -> str:
    """What the confirmation promised for each order, compact, so the result can say if the run differs."""
    return ",".join(f"{o.get('id')}:{':'.join(_promised(o))}" for o in outcomes)


def _said(reason: str) -> str:
    """ "Cancel and re-place: nothing stops it (replaced)": the words first, the code second."""
    return f"{reason_label({'reason': reason})} ({reason})"


def decisions_differences(shown: str, result: SweepResult, *, most: int = 5) -> list[str]:
    """ "#12 x-1: promised Cancel and re-place: nothing stops it (replaced); the run: Left alone: ...", ..."""
    expected: dict[str, tuple[str, str]] = {}
    for item in shown.split(","):
        parts = item.split(":")
        if len(parts) == 3:
            expected[parts[0]] = (parts[1], parts[2])
    got = {str(o.id): o.as_dict() for o in result.orders}
    settings = result.settings.as_dict()
    lines = []
    for order_id in sorted(expected.keys() | got.keys(), key=lambda i: int(i) if i.isdigit() else 0):
        before, after = expected.get(order_id), got.get(order_id)
        if after is not None and before == (str(after.get("decision")), str(after.get("reason"))):
            continue
        said = f"promised {_said(before[1])}" if before else "not in the preview"
        if after is None:
            did = "not a candidate any more"
        else:
            did = f"{reason_label(after, settings=settings)} ({after.get('reason')})"
        name = f"#{order_id} {after.get('client_order_id')}" if after else f"#{order_id}"
        lines.append(f"{name}: {said}; the run: {did}")
    return lines[:most] + ([f"and {len(lines) - most} more"] if len(lines) > most else [])
