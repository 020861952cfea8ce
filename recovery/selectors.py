"""Reads: the settings in force, stale orders, their projects, the gates of a sweep."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.db import connections
from django.db.models import Q, QuerySet

from recovery.config import WHOLE_COLUMN, WHY_UNREADABLE, AutoRecoveryConfig, SettingsWarning, config_parse
from recovery.decisions import GateState, OrderSnapshot
from recovery.gates.bridge import open_orders_read, quotes_read
from recovery.gates.guard import NEW_YORK, halted_projects_get
from recovery.gates.ib import ib_probe
from recovery.gates.market_hours import market_state_get
from recovery.models import IbSettings, TradeOrder, TradeRun, TradeSettings
from recovery.routers import trading_alias
from recovery.timestamps import iso_utc


@dataclass(frozen=True)
class SettingsInForce:
    config: AutoRecoveryConfig
    warnings: list[SettingsWarning]
    row_id: int | None


@dataclass(frozen=True)
class Gates:
    state: GateState
    report: dict[str, Any]  # what the operator sees: the same facts, with their sources


def settings_row_get() -> TradeSettings | None:
    """The current trade_settings row: the one with the highest id."""
    return TradeSettings.objects.order_by("-id").first()


def settings_in_force_get() -> SettingsInForce:
    try:
        row = settings_row_get()
    except ValueError as exc:
        # Valid JSON that Python will not decode (an integer past 4,300 digits) must not
        # stop the sweep: all defaults, reported like any other unreadable column.
        warning = SettingsWarning(WHOLE_COLUMN, str(exc)[:200], WHY_UNREADABLE)
        return SettingsInForce(config=AutoRecoveryConfig(), warnings=[warning], row_id=None)
    raw = row.auto_recovery if row is not None else None
    config, warnings = config_parse(raw, row_exists=row is not None)
    return SettingsInForce(config=config, warnings=warnings, row_id=row.pk if row else None)


def stale_candidates(*, now: dt.datetime, timeout_seconds: int) -> QuerySet[TradeOrder]:
    """The one definition of a stale order: the sweep's candidates, before any gate.

    The (status, created_at) index serves it. The sweep, the admin's filter, its preview
    and the status page all start from this queryset so their numbers agree.
    """
    return (
        TradeOrder.objects.filter(
            status="NEW",
            created_at__lte=now - dt.timedelta(seconds=timeout_seconds),
            ib_order_id__isnull=True,
            ib_perm_id__isnull=True,
        )
        .filter(Q(filled_quantity=0) | Q(filled_quantity__isnull=True))
        # has_key first: for a missing key, `intent_only = true` is NULL in SQL and a
        # bare exclude() would drop every order without the key. Both engines also
        # treat the JSON string "true" as true here; decisions.candidate_problem agrees.
        .exclude(Q(params__has_key="intent_only") & Q(params__intent_only=True))
    )


def stale_order_list(
    *,
    now: dt.datetime,
    timeout_seconds: int,
    limit: int,
    order_ids: Sequence[int] | None = None,
) -> list[TradeOrder]:
    """Candidates, oldest first, at most `limit` (only among `order_ids` when given)."""
    orders = stale_candidates(now=now, timeout_seconds=timeout_seconds)
    if order_ids is not None:
        orders = orders.filter(pk__in=list(order_ids))
    return list(orders.order_by("created_at", "id")[:limit])


def order_locked_get(*, order_id: int) -> TradeOrder | None:
    """The order, locked FOR UPDATE, unless another sweep holds it (or it is gone).

    SKIP LOCKED: a second sweep passes over an order the first is working on instead of
    waiting for it (and then finding it cancelled). By primary key only: the caller
    re-checks the candidate rules on the locked row (decisions.candidate_problem), which
    is far cheaper than compiling the whole candidate filter once per order. The SQL is
    written out (a raw query still converts every column as the ORM does): compiling a
    queryset once per order was a third of the sweep's own CPU. SQLite has no row locks;
    its database-level write lock and the conditional cancel keep it exact.
    """
    connection = connections[trading_alias()]
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = f"SELECT {_order_columns(connection)} FROM trade_orders WHERE id = %s{lock}"
    return next(iter(TradeOrder.objects.using(trading_alias()).raw(sql, [order_id])), None)


def _order_columns(connection: Any) -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in TradeOrder._meta.concrete_fields)


# MariaDB: a read after a conflict must see what another Galera node committed, so it
# waits for this node to apply every write set certified before it (wsrep_sync_wait=1, a
# no-op off a cluster). SET STATEMENT keeps it to this one read, in the same round trip.
SYNCED_READ = "SET STATEMENT wsrep_sync_wait = 1 FOR "


def order_current_get(
    *, order_id: int | None = None, client_order_id: str | None = None
) -> TradeOrder | None:
    """The order as committed now, by id or client_order_id, without a lock.

    For the re-read after another writer won (services.order_write); by primary key or the
    unique client id, so it stays one indexed read.
    """
    if (order_id is None) == (client_order_id is None):
        raise ValueError("give exactly one of order_id and client_order_id")
    column, value = ("id", order_id) if order_id is not None else ("client_order_id", client_order_id)
    connection = connections[trading_alias()]
    prefix = SYNCED_READ if connection.vendor == "mysql" and connection.mysql_is_mariadb else ""
    sql = f"{prefix}SELECT {_order_columns(connection)} FROM trade_orders WHERE {column} = %s"
    return next(iter(TradeOrder.objects.using(trading_alias()).raw(sql, [value])), None)


def orders_by_id(order_ids: Iterable[int]) -> dict[int, TradeOrder]:
    return TradeOrder.objects.in_bulk(list(order_ids))


def run_projects_get(run_ids: Iterable[int | None]) -> dict[int, tuple[int, str]]:
    """run_id -> (project_id, mode) from trade_runs, in one query."""
    wanted = sorted({r for r in run_ids if r is not None})
    if not wanted:
        return {}
    rows = TradeRun.objects.filter(pk__in=wanted).values_list("id", "project_id", "mode")
    return {run_id: (project_id, mode or "paper") for run_id, project_id, mode in rows}


def _params(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def order_snapshot(order: TradeOrder, *, runs: Mapping[int, tuple[int, str]]) -> OrderSnapshot:
    params = _params(order.params)
    project_id, mode = runs.get(order.run_id, (None, None)) if order.run_id is not None else (None, None)
    if project_id is None:
        raw_project = params.get("project_id")
        project_id = raw_project if type(raw_project) is int else None
        mode = params.get("mode") if isinstance(params.get("mode"), str) else None
    return OrderSnapshot(
        id=order.pk,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        order_type=order.order_type,
        limit_price=order.limit_price,
        status=order.status,
        filled_quantity=order.filled_quantity,
        ib_order_id=order.ib_order_id,
        ib_perm_id=order.ib_perm_id,
        params=params,
        created_at=order.created_at,
        updated_at=order.updated_at,
        project_id=project_id,
        mode=mode or "paper",
    )


def ib_target_get() -> tuple[str, int, str]:
    """host, port, api_mode of the IB gateway: ib_settings' lowest id, else the env fallback."""
    row = IbSettings.objects.order_by("id").first()
    if row is None:
        return django_settings.IB_HOST, django_settings.IB_PORT, "ib"
    return row.host, row.port, row.api_mode


def gates_get(*, config: AutoRecoveryConfig, now: dt.datetime, orders: Sequence[OrderSnapshot]) -> Gates:
    """Every outside fact of one sweep, read once before any order is decided."""
    host, port, api_mode = ib_target_get()
    # Probe the gateway only when there is something to decide (no socket per idle minute).
    probe = (
        ib_probe(host=host, port=port, api_mode=api_mode, timeout=django_settings.IB_PROBE_TIMEOUT_SECONDS)
        if orders
        else None
    )
    market = market_state_get(now=now)
    local = now.astimezone(NEW_YORK).time()
    blackout = next((w for w in config.blackout_windows if w.contains(local)), None)
    halted = halted_projects_get(
        pairs=[(o.project_id, o.mode) for o in orders if o.project_id is not None], now=now
    )
    root = django_settings.LEAN_BRIDGE_ROOT
    quotes = quotes_read(root=root, now=now, max_age_seconds=django_settings.BRIDGE_QUOTES_MAX_AGE_SECONDS)
    open_orders = open_orders_read(
        root=root, now=now, max_age_seconds=django_settings.BRIDGE_OPEN_ORDERS_MAX_AGE_SECONDS
    )
    state = GateState(
        ib_reachable=bool(probe and probe.reachable),
        market_open=market.is_open,
        in_blackout=blackout is not None,
        halted=halted,
        quotes=dict(quotes.prices) if quotes.available else None,
        open_tags=open_orders.tags if open_orders.available else None,
    )
    report = {
        "ib": {
            "probed": probe is not None,
            "reachable": state.ib_reachable,
            "host": host,
            "port": port,
            "api_mode": api_mode,
            "detail": probe.detail if probe else "not probed: no candidates",
        },
        "market": {
            "open": market.is_open,
            "session_open": _iso(market.session_open),
            "session_close": _iso(market.session_close),
            "next_open": _iso(market.next_open),
            "next_close": _iso(market.next_close),
        },
        "blackout": {
            "active": blackout is not None,
            "window": blackout.as_dict() if blackout else None,
            "new_york_time": local.strftime("%H:%M"),
        },
        "halted": sorted(
            [{"project_id": p, "mode": m} for p, m in halted], key=lambda h: (h["project_id"], h["mode"])
        ),
        "quotes": _bridge_report(quotes, count=len(quotes.prices)),
        "open_orders": _bridge_report(open_orders, count=len(open_orders.tags)),
    }
    return Gates(state=state, report=report)


def _bridge_report(snapshot: Any, *, count: int) -> dict[str, Any]:
    age = snapshot.age_seconds
    return {
        "available": snapshot.available,
        "problem": snapshot.problem,
        "age_seconds": round(age, 1) if age is not None else None,
        "items": count,
        "skipped_items": snapshot.skipped_items,
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return iso_utc(moment) if moment else None
