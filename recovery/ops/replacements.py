"""Is the backend sending our replacements? What health and the status page report of them.

Three incidents, each naming its orders:

- not picked up: a replacement still NEW PICKUP_GRACE_SECONDS (120) after it was written
  and never taken by the backend's direct-order loop (or nothing in its row makes the
  backend send it): the backend's sender is not running. Counted while it lasts, at any age.
- ended without reaching the broker: a replacement written in the last WINDOW (24 h) that
  the backend set SKIPPED (its open-orders sync gave up on it, never sent) or REJECTED (the
  bridge or the backend refused it), with no fill. The order it replaced stays cancelled.
- a double: a replacement written in the last WINDOW, or still NEW at any age, that is
  live (not CANCELED, REJECTED or SKIPPED) while an earlier order of its chain, which
  auto-recovery cancelled, came back to life (SUBMITTED, PARTIALLY_FILLED or FILLED again,
  a broker id or a fill): both may be at the broker.

Bounded however long the trail and the order book: only the replacements this project
wrote, found through their `trade_order.auto_recovery.replace` audit rows (the newest
LOOKED_AT, newest first through the (action) index) joined to their orders by primary key
in one statement; then, when some are live, their chains' earlier orders that came back,
by the unique client_order_id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import Q

from recovery.db.audit import ACTION_REPLACE
from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
from recovery.selectors import NEWEST_REPLACEMENTS_JOIN
from recovery.sweep.labels import age_text
from recovery.sweep.pickup import (
    ALIVE_STATUSES,
    FACT_COLUMNS,
    PICKUP_GRACE_SECONDS,
    Double,
    OrderFacts,
    Pickup,
    Stage,
    double_get,
    earlier_client_ids,
    life_text,
    live,
    pickup_get,
)

# How long a replacement that ended SKIPPED or REJECTED, or a double, keeps health failing:
# the rest of that trading day and the next morning's first look, then it clears by itself.
WINDOW = dt.timedelta(hours=24)
# The newest replace audit rows read: a day at the default hourly cap (60) is 1,440.
LOOKED_AT = 2000
MOST_NAMED = 5  # orders named per incident in a health line; the count says the rest
IN_CHUNK = 1000  # client ids per IN list


@dataclass(frozen=True)
class Flagged:
    order: OrderFacts
    pickup: Pickup


@dataclass(frozen=True)
class ReplacementIncidents:
    looked_at: int = 0  # replacements read (written in the window, or still NEW)
    not_picked_up: list[Flagged] = field(default_factory=list)
    ended_unsent: list[Flagged] = field(default_factory=list)
    doubles: list[Double] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.not_picked_up or self.ended_unsent or self.doubles)

    def sentences(self, *, now: dt.datetime) -> list[str]:
        """One sentence per kind of incident, the worst first, naming orders and counting them."""
        lines = []
        if self.doubles:
            named = "; ".join(
                f"{_revived(d)} beside its replacement #{d.replacement.id} {d.replacement.state}"
                for d in self.doubles[:MOST_NAMED]
            )
            lines.append(
                f"{_count(len(self.doubles), 'double')} (both the original and its replacement may be "
                f"at the broker): {named}{_more(len(self.doubles))}"
            )
        if self.ended_unsent:
            named = "; ".join(f"#{f.order.id} {f.pickup.label}" for f in self.ended_unsent[:MOST_NAMED])
            lines.append(
                f"{_count(len(self.ended_unsent), 'replacement')} written in the last "
                f"{WINDOW.total_seconds() / 3600:.0f} h ended without reaching the broker (the order it "
                f"replaced stays cancelled): {named}{_more(len(self.ended_unsent))}"
            )
        if self.not_picked_up:
            named = ", ".join(
                f"#{f.order.id} written {_age(f.order, now=now)} ago" for f in self.not_picked_up[:MOST_NAMED]
            )
            lines.append(
                f"{_count(len(self.not_picked_up), 'replacement')} not picked up by the backend's sender "
                f"{PICKUP_GRACE_SECONDS} s after written (is its direct-order loop running?): "
                f"{named}{_more(len(self.not_picked_up))}"
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "looked_at": self.looked_at,
            "window_hours": WINDOW.total_seconds() / 3600,
            "not_picked_up": [f.order.id for f in self.not_picked_up],
            "ended_unsent": [f.order.id for f in self.ended_unsent],
            "doubles": [
                {"replacement": d.replacement.id, "revived": [o.id for o in d.revived]} for d in self.doubles
            ],
        }


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _more(n: int) -> str:
    return f" and {n - MOST_NAMED} more" if n > MOST_NAMED else ""


def _age(order: OrderFacts, *, now: dt.datetime) -> str:
    return age_text((now - order.created_at).total_seconds()) if order.created_at else "-"


def _revived(double: Double) -> str:
    return ", ".join(f"#{o.id} {life_text(o)}" for o in double.revived)


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), IN_CHUNK):
        yield list(values[start : start + IN_CHUNK])


# The orders of the newest LOOKED_AT replace rows (selectors.NEWEST_REPLACEMENTS_JOIN), still
# NEW or written since a moment: one statement.
RECENT_SQL = (
    "SELECT {columns} FROM trade_orders o "
    + NEWEST_REPLACEMENTS_JOIN  # no braces in it: RECENT_SQL is formatted with its columns
    + " WHERE o.status = 'NEW' OR o.created_at >= %s ORDER BY o.id DESC"
)


def replacements_read(*, now: dt.datetime) -> list[OrderFacts]:
    """This project's replacements written in the WINDOW before `now`, or still NEW, newest first."""
    connection = connections[trading_alias()]
    columns = ", ".join(f"o.{connection.ops.quote_name(c)}" for c in FACT_COLUMNS)
    since = connection.ops.adapt_datetimefield_value(now - WINDOW)
    rows = TradeOrder.objects.using(trading_alias()).raw(
        RECENT_SQL.format(columns=columns), [ACTION_REPLACE, LOOKED_AT, since]
    )
    seen: set[int] = set()
    found = []
    for row in rows:  # a raw query converts each column as the ORM does (JSON, aware datetimes)
        if row.pk not in seen:
            seen.add(row.pk)
            found.append(OrderFacts(*(getattr(row, c) for c in FACT_COLUMNS)))
    return found


def came_back_read(client_ids: Iterable[str]) -> dict[str, OrderFacts]:
    """Of these orders, those that came back to life (sweep.pickup.came_back, in SQL), by client id."""
    wanted = sorted(set(client_ids))
    found: dict[str, OrderFacts] = {}
    alive = Q(status__in=sorted(ALIVE_STATUSES)) | Q(ib_order_id__isnull=False) | Q(filled_quantity__gt=0)
    for chunk in _chunks(wanted):
        rows = TradeOrder.objects.filter(client_order_id__in=chunk).filter(alive).values_list(*FACT_COLUMNS)
        found.update({row.client_order_id: row for row in (OrderFacts(*r) for r in rows)})
    return found


def replacement_incidents_get(*, now: dt.datetime) -> ReplacementIncidents:
    """The incidents among the replacements read: those written in the WINDOW, and those still
    NEW at any age (one not sent yet may still be sent, so its double is one too)."""
    replacements = replacements_read(now=now)
    not_picked_up, ended, chains = [], [], []
    for order in replacements:
        pickup = pickup_get(order, now=now)
        if pickup.incident and pickup.stage in (Stage.NOT_PICKED_UP, Stage.NOT_HANDED):
            not_picked_up.append(Flagged(order, pickup))
        elif pickup.incident and pickup.stage in (Stage.SKIPPED, Stage.REJECTED):
            ended.append(Flagged(order, pickup))
        if live(order):
            chains.append(order)
    revived = came_back_read(c for order in chains for c in earlier_client_ids(order)) if chains else {}
    doubles = []
    for order in chains:
        double = double_get(order, [revived[c] for c in earlier_client_ids(order) if c in revived])
        if double is not None:
            doubles.append(double)
    return ReplacementIncidents(
        looked_at=len(replacements), not_picked_up=not_picked_up, ended_unsent=ended, doubles=doubles
    )
