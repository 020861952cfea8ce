"""The recovery chain of the orders on a page: who replaced whom, what each is now, doubles.

One query per page, by the chain's deterministic client ids (the unique index): each
order's next replacement, and for a replacement the earlier orders of its chain (its
root, -r1 ... -r(n-1)). From those rows: the original's status as it is now, whether the
backend has picked the replacement up (sweep.pickup), and whether the chain is a double
(an order auto-recovery cancelled that came back to life while a later one is live).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from recovery.admin.history import history_link
from recovery.db.models import TradeOrder
from recovery.sweep.chain import chain_root, replacement_client_order_id
from recovery.sweep.decisions import chain_attempts
from recovery.sweep.pickup import (
    FACT_COLUMNS,
    Double,
    OrderFacts,
    Pickup,
    double_get,
    earlier_client_ids,
    pickup_get,
    replacement_origin,
)


@dataclass(frozen=True)
class Chain:
    """What the page shows of one order's chain."""

    facts: OrderFacts
    origin: OrderFacts | None = None  # for a replacement: the order it was made from, as it is now
    replacement: OrderFacts | None = None  # the order's own replacement, when it has one
    pickup: Pickup | None = None  # for a replacement: how far the backend got with it
    replacement_pickup: Pickup | None = None  # how far the backend got with its replacement
    double: Double | None = None

    @property
    def is_replacement(self) -> bool:
        return replacement_origin(self.facts.params) is not None


def order_facts(order: TradeOrder) -> OrderFacts:
    return OrderFacts(*(getattr(order, column) for column in FACT_COLUMNS))


def _next_client_id(order: TradeOrder) -> str | None:
    params = order.params if isinstance(order.params, dict) else {}
    attempts = chain_attempts(params)
    if attempts is None:
        return None
    _, root = chain_root(order_id=order.pk, client_order_id=order.client_order_id, params=params)
    return replacement_client_order_id(root_client_order_id=root, attempt=attempts + 1)


def chains_attach(orders: Iterable[TradeOrder], *, now: dt.datetime) -> None:
    """Sets .chain (a Chain) and .replacement_id on each order, in one query for them all."""
    orders = list(orders)
    facts = {order.pk: order_facts(order) for order in orders}
    wanted: set[str] = set()
    for order in orders:
        wanted.update(earlier_client_ids(facts[order.pk]))
        next_id = _next_client_id(order)
        if next_id is not None:
            wanted.add(next_id)
    rows = (
        TradeOrder.objects.filter(client_order_id__in=sorted(wanted)).values_list(*FACT_COLUMNS)
        if wanted
        else []
    )
    by_client = {row.client_order_id: row for row in (OrderFacts(*r) for r in rows)}
    for order in orders:
        own = facts[order.pk]
        found = by_client.get(_next_client_id(order) or "")
        replacement = found if found is not None and replacement_origin(found.params) == order.pk else None
        earlier = [by_client[c] for c in earlier_client_ids(own) if c in by_client]
        origin_id = replacement_origin(own.params)
        origin = next((e for e in earlier if e.id == origin_id), None)
        if origin_id is not None:
            double = double_get(own, earlier)
        else:
            double = double_get(replacement, [own]) if replacement is not None else None
        order.chain = Chain(
            facts=own,
            origin=origin,
            replacement=replacement,
            pickup=pickup_get(own, now=now) if origin_id is not None else None,
            replacement_pickup=pickup_get(replacement, now=now) if replacement is not None else None,
            double=double,
        )
        order.replacement_id = replacement.id if replacement is not None else None


def order_link(order_id: Any) -> str:
    if type(order_id) is not int:
        return "-"
    url = reverse("admin:recovery_tradeorder_change", args=[order_id])
    return format_html('<a href="{}">#{}</a>', url, order_id)


def pickup_html(pickup: Pickup, *, code: bool) -> SafeString:
    """The words first; then the backend's own state (`code`), or the stage's code in the list."""
    classes = f"pickup pickup-{pickup.stage}" + (" pickup-incident" if pickup.incident else "")
    return format_html(
        '<span class="{}">{}</span> <code class="{}">{}</code>',
        classes,
        pickup.label,
        "pickup-code" if code else "reason-code",
        pickup.code if code else pickup.stage,
    )


def double_html(double: Double, *, full: bool) -> SafeString:
    if full:
        return format_html('<strong class="double-alert">Double: {}</strong>', double.text)
    ids = ", ".join(f"#{o.id}" for o in double.revived)
    return format_html(
        '<strong class="double-alert">Double: {} and #{} may both be at the broker</strong>',
        ids,
        double.replacement.id,
    )


def chain_html(chain: Chain | None, *, detail: bool) -> SafeString | str:
    """The chain column (detail=False) and the order page's "recovery chain" (detail=True)."""
    if chain is None:
        return "-"
    parts: list[Any] = []
    if chain.double is not None:
        parts.append(double_html(chain.double, full=detail))
    recovery = chain.facts.params.get("auto_recovery") if isinstance(chain.facts.params, dict) else None
    if isinstance(recovery, dict) and recovery.get("attempts"):
        origin_id = recovery.get("origin_order_id")
        if chain.origin is not None:
            now = format_html(
                ' <small class="origin-now">(#{} is now {})</small>', origin_id, chain.origin.state
            )
        elif type(origin_id) is int:
            now = format_html(' <small class="origin-now">(#{} not found)</small>', origin_id)
        else:
            now = ""
        history = format_html(" · {}", history_link(origin_id, "its decisions")) if detail else ""
        parts.append(
            format_html("attempt {} of {}{}{}", recovery["attempts"], order_link(origin_id), now, history)
        )
    if chain.pickup is not None and not detail:  # the order's page has a field of its own for it
        parts.append(pickup_html(chain.pickup, code=False))
    if chain.replacement is not None:
        replacement = chain.replacement
        line = format_html(
            'replaced by {} <small class="replacement-now">({})</small>',
            order_link(replacement.id),
            replacement.state,
        )
        if detail and chain.replacement_pickup is not None:
            line = format_html("{}: {}", line, pickup_html(chain.replacement_pickup, code=False))
        if detail:
            line = format_html("{} · {}", line, history_link(replacement.id, "its decisions"))
        parts.append(line)
    if not parts:
        return "-"
    return format_html_join(mark_safe("<br>"), "{}", ((p,) for p in parts))
