"""The one writer of audit_logs rows, and the action names the backend reads."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections

from recovery.db.routers import trading_alias

ACTION_CANCEL = "trade_order.auto_recovery.cancel"
ACTION_REPLACE = "trade_order.auto_recovery.replace"
ACTION_SWEEP = "auto_recovery.sweep"
ACTION_SETTINGS_UPDATE = "trade_settings.auto_recovery.update"
# Each action in a word or two, for the audit list's column and filter (the code beside it).
ACTION_WORDS = {
    ACTION_CANCEL: "cancel",
    ACTION_REPLACE: "replacement",
    ACTION_SWEEP: "sweep",
    ACTION_SETTINGS_UPDATE: "settings change",
}
# How an entry of each action is named on the admin's pages (AuditLog.__str__).
ACTION_TITLES = {
    ACTION_CANCEL: "Cancel of order #{id}",
    ACTION_REPLACE: "Replacement order #{id}",
    ACTION_SWEEP: "Sweep",
    ACTION_SETTINGS_UPDATE: "Settings change",
}
RESOURCE_ORDER = "trade_order"
RESOURCE_SWEEP = "auto_recovery"
RESOURCE_SETTINGS = "trade_settings"
ACTOR_COMMAND = "auto_recover"
ACTOR_MAX_LENGTH = 64


def admin_actor(username: str) -> str:
    return f"admin:{username}"[:ACTOR_MAX_LENGTH]


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    resource_type: str
    resource_id: int | None
    detail: dict[str, Any]


AUDIT_COLUMNS = "(actor, action, resource_type, resource_id, detail, created_at)"


def audit_entries_write(entries: Sequence[AuditEntry], *, now: dt.datetime) -> int | None:
    """Insert the rows in one statement; the caller's transaction decides their fate.

    Returns the new row's id when exactly one row was written (a multi-row INSERT does
    not report every id on every engine). Plain SQL: it runs inside every recovered
    order's transaction, where the ORM's per-statement cost showed in the benchmark.
    """
    if not entries:
        return None
    connection = connections[trading_alias()]
    created_at = connection.ops.adapt_datetimefield_value(now)
    values: list[Any] = []
    for entry in entries:
        detail = json.dumps(entry.detail, allow_nan=False)
        values += [
            entry.actor[:ACTOR_MAX_LENGTH],
            entry.action,
            entry.resource_type,
            entry.resource_id,
            detail,
            created_at,
        ]
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(entries))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO audit_logs {AUDIT_COLUMNS} VALUES {placeholders}", values)
        return cursor.lastrowid if len(entries) == 1 else None


# The sweep's own row stays far under any server's max_allowed_packet (MariaDB's default is
# 16 MiB, MySQL's 64 MiB; 1 MiB is the least either allows): its counts, gates and settings,
# and the orders that matter most; every order's decision is in the decision history.
SWEEP_ORDERS_MAX = 200
SWEEP_LIST_MAX = 200  # left_alone entries
SWEEP_DETAIL_MAX_BYTES = 256 * 1024
_TEXT_MAX = 400  # an order's detail or label, cut
_EVIDENCE_MAX = 1000  # an order's evidence as JSON; past it, left to the history's detail
_CUT = "…"
_BULKY = ("gates", "settings_warnings", "left_alone", "settings")  # the parts cut past their share
_PART_MAX_BYTES = 32 * 1024


def _order_rank(order: Any) -> int:
    """Failures first, then what was cancelled or re-placed, then skips."""
    if not isinstance(order, dict):
        return 3
    if order.get("reason") == "write_failed":
        return 0
    return 1 if order.get("decision") in ("cancel", "replace") else 2


def _order_cut(order: Any) -> Any:
    if not isinstance(order, dict):
        return order
    order = dict(order)
    for key in ("detail", "label"):
        text = order.get(key)
        if isinstance(text, str) and len(text) > _TEXT_MAX:
            order[key] = text[: _TEXT_MAX - 1] + _CUT
    evidence = order.get("evidence")
    if evidence is not None and len(json.dumps(evidence, default=str)) > _EVIDENCE_MAX:
        order["evidence"] = None
        order["evidence_cut"] = True
    return order


def _size(detail: dict[str, Any]) -> int:
    return len(json.dumps(detail, default=str).encode())


def sweep_detail_bounded(detail: dict[str, Any], *, max_orders: int = SWEEP_ORDERS_MAX) -> dict[str, Any]:
    """A sweep row's detail cut to its bound: the counts stay exact, at most `max_orders`
    orders stay listed (failed, then cancelled and re-placed, then skipped), and
    `orders_total` / `orders_omitted` say how many were left out. Idempotent: a row already
    cut keeps its totals. Past SWEEP_DETAIL_MAX_BYTES anyway (long texts everywhere), fewer
    orders are listed, and at last the bulky parts are replaced by a note.
    """
    bounded = dict(detail)
    orders = detail.get("orders") if isinstance(detail.get("orders"), list) else []
    total = detail.get("orders_total")
    total = total if type(total) is int and total >= len(orders) else len(orders)
    ranked = sorted(range(len(orders)), key=lambda i: (_order_rank(orders[i]), i))
    kept = [_order_cut(orders[i]) for i in ranked[:max_orders]]
    left_alone = detail.get("left_alone") if isinstance(detail.get("left_alone"), list) else []
    left_total = detail.get("left_alone_total")
    left_total = left_total if type(left_total) is int and left_total >= len(left_alone) else len(left_alone)
    bounded["left_alone"] = left_alone[:SWEEP_LIST_MAX]
    bounded["left_alone_total"] = left_total
    for key in _BULKY:  # one part alone that would crowd out every order
        if key in bounded and _size({key: bounded[key]}) > _PART_MAX_BYTES:
            bounded[key] = _cut_note(key)
    while True:
        bounded["orders"] = kept
        bounded["orders_total"] = total
        bounded["orders_omitted"] = total - len(kept)
        if not kept or _size(bounded) <= SWEEP_DETAIL_MAX_BYTES:
            break
        kept = kept[: len(kept) // 2]
    for key in _BULKY:
        if _size(bounded) <= SWEEP_DETAIL_MAX_BYTES:
            break
        if key in bounded:
            bounded[key] = _cut_note(key)
    return bounded


def _cut_note(key: str) -> dict[str, str]:
    return {"cut": f"{key} left out: the row would pass {SWEEP_DETAIL_MAX_BYTES} bytes"}
