"""Reads: the settings in force, stale orders, their projects, the gates of a sweep."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KT

from recovery.db.audit import ACTION_REPLACE, ACTION_SWEEP
from recovery.db.clock import database_clock_skew
from recovery.db.models import AuditLog, IbSettings, TradeOrder, TradeRun, TradeSettings
from recovery.db.routers import trading_alias
from recovery.db.timestamps import iso_utc
from recovery.gates.bridge import OpenOrdersSnapshot, QuotesSnapshot, open_orders_read, quotes_read
from recovery.gates.events import STATE_FOLDER as EVENTS_STATE_FOLDER
from recovery.gates.events import LedgerStore
from recovery.gates.evidence import OrderEvidence, order_tags, submit_command_get
from recovery.gates.evidence_read import EvidenceGathered, EvidenceRequest, evidence_gather, root_problem_get
from recovery.gates.guard import NEW_YORK, halted_today_get
from recovery.gates.ib import ib_probe
from recovery.gates.market_hours import market_state_get
from recovery.gates.sender import gateway_block_read
from recovery.sweep.config import (
    WHOLE_COLUMN,
    WHY_UNREADABLE,
    AutoRecoveryConfig,
    SettingsWarning,
    config_parse,
)
from recovery.sweep.decisions import GateState, OrderSnapshot
from recovery.sweep.labels import age_text
from recovery.sweep.pickup import direct_retry_pending
from recovery.sweep.placement import LOOP_READS, WAITING_SECONDS, RunPlacement, SenderState


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


# Patch 20261130: lets the candidate query pass over halted runs' orders in the index.
HALTED_RUNS_INDEX = "idx_trade_orders_status_run_created_at"
INDEX_PRESENT_SQL = (
    "SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
    "AND TABLE_NAME = 'trade_orders' AND INDEX_NAME = %s LIMIT 1"
)


def trade_orders_index_present(name: str) -> bool:
    """Whether trade_orders has the index `name` (MySQL/MariaDB; always False elsewhere)."""
    connection = connections[trading_alias()]
    if connection.vendor != "mysql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(INDEX_PRESENT_SQL, [name])
        return cursor.fetchone() is not None


def _sql_with_index(orders: QuerySet[Any], index: str) -> tuple[str, tuple[Any, ...]]:
    """The queryset's SQL with FORCE INDEX on trade_orders (Django has no index hints).

    Used only where the optimizer is known to pick the (status, created_at) index and then
    look up every halted order's row: behind 100,000 of them, 156 ms against 1.6 ms.
    """
    sql, params = orders.query.sql_with_params()
    table = connections[trading_alias()].ops.quote_name(TradeOrder._meta.db_table)
    hinted = sql.replace(f"FROM {table}", f"FROM {table} FORCE INDEX (`{index}`)", 1)
    return hinted, params


# Patch 20260204: the (status, created_at) index the stale orders are found and counted by.
STALE_INDEX = "idx_trade_orders_status_created_at"


def new_orders_count(orders: QuerySet[TradeOrder], *, indexed: bool | None = None) -> int:
    """COUNT(*) of `orders`, a query on NEW orders, exactly, through the (status, created_at) index.

    The index is named (FORCE INDEX) where it exists: then the count reads only the NEW
    orders' range of it (and their rows for the other conditions), never the whole table,
    whatever the optimizer's statistics say about a small or freshly loaded table.
    `indexed`: whether it exists, when the caller asked already (None: ask).
    """
    orders = orders.order_by()
    if not (trade_orders_index_present(STALE_INDEX) if indexed is None else indexed):
        return orders.count()
    sql, params = _sql_with_index(orders.values("pk"), STALE_INDEX)
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) counted", params)
        return int(cursor.fetchone()[0])


def stale_order_total(*, now: dt.datetime, timeout_seconds: int, indexed: bool | None = None) -> int:
    """How many stale orders there are at `now`: exact, whatever a run or a page lists of them."""
    return new_orders_count(stale_candidates(now=now, timeout_seconds=timeout_seconds), indexed=indexed)


def stale_order_count(orders: QuerySet[TradeOrder], *, at_most: int, index: str | None = None) -> int:
    """How many of `orders` there are, counting no further than `at_most` + 1."""
    capped = orders.values("pk")[: at_most + 1]
    if index is None:
        return capped.count()
    sql, params = _sql_with_index(capped, index)
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM ({sql}) capped", params)
        return int(cursor.fetchone()[0])


def stale_order_list(
    *,
    now: dt.datetime,
    timeout_seconds: int,
    limit: int,
    order_ids: Sequence[int] | None = None,
    after: tuple[dt.datetime, int] | None = None,
    exclude: Q | None = None,
    index: str | None = None,
) -> list[TradeOrder]:
    """Candidates, oldest first, at most `limit` (only among `order_ids` when given).

    `after`: the (created_at, id) of the last order of the previous batch (keyset paging,
    so a batch costs the same however far in it is). `exclude`: orders that are skipped
    anyway (sweep_plan), left out in SQL so they never hold others back. `index`: force
    that index (it must exist: see trade_orders_index_present).
    """
    orders = stale_candidates(now=now, timeout_seconds=timeout_seconds)
    if order_ids is not None:
        orders = orders.filter(pk__in=list(order_ids))
    if after is not None:
        created, last_id = after
        orders = orders.filter(Q(created_at__gt=created) | Q(created_at=created, pk__gt=last_id))
    if exclude is not None:
        orders = orders.exclude(exclude)
    orders = orders.order_by("created_at", "id")[:limit]
    if index is None:
        return list(orders)
    sql, params = _sql_with_index(orders, index)
    return list(TradeOrder.objects.db_manager(trading_alias()).raw(sql, params))


def order_locked_get(*, order_id: int) -> TradeOrder | None:
    """The order, locked FOR UPDATE, unless another sweep holds it (or it is gone).

    SKIP LOCKED: a second sweep passes over an order the first is working on instead of
    waiting for it (and then finding it cancelled). By primary key only: the caller
    re-checks the candidate rules on the locked row (decisions.candidate_problem), which
    is far cheaper than compiling the whole candidate filter once per order. The SQL is
    written out (a raw query still converts every column as the ORM does): compiling a
    queryset once per order was a third of the sweep's own CPU. SQLite has no row locks;
    its database-level write lock and the conditional cancel keep it exact.

    Its run's status as committed now comes in the same statement (`run_status_now`, rule
    3b under the lock): a subquery in the select list is a plain read, so it locks no
    run row (another sweep may lock another order of the same run; the backend may
    finish the run meanwhile, as it could a moment later) and costs no round trip of its own.
    """
    connection = connections[trading_alias()]
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    run_status = "(SELECT r.status FROM trade_runs r WHERE r.id = trade_orders.run_id) AS run_status_now"
    sql = f"SELECT {_order_columns(connection)}, {run_status} FROM trade_orders WHERE id = %s{lock}"
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
    return {run_id: (facts.project_id, facts.mode) for run_id, facts in run_facts_get(run_ids).items()}


@dataclass(frozen=True)
class RunFacts:
    project_id: int
    mode: str
    output_dir: Any  # params.lean_execution.output_dir as stored (the backend's path), or None
    status: str | None = None
    placement: RunPlacement = RunPlacement()  # rule 7c and the replacement's run keys


def replacements_last_hour(*, now: dt.datetime, at_most: int) -> int:
    """Replacements every sweep wrote in the hour before `now` (cron, admin, API, every host).

    Counted up to `at_most`: past the hourly cap the exact figure changes nothing. So only
    the newest `at_most` replace rows are read, newest first through the (action) index
    (whose entries end in the id): the count costs at most `at_most` rows however long the
    trail is, where filtering on created_at read every replace row ever written. Rows go
    in by id as they are written; a row with a lower id stamped later by another host's
    clock can differ by the clock gate's tolerance at most, a few seconds at the hour's edge.
    """
    since = now - dt.timedelta(hours=1)
    # No upper bound: a row another sweep stamped a moment after this one began counts too.
    newest = AuditLog.objects.filter(action=ACTION_REPLACE).order_by("-id")[:at_most]
    return sum(1 for created in newest.values_list("created_at", flat=True) if created > since)


# Replacements looked at for one still waiting for the backend's loop: while one waits, no
# other is written (rule 10b), so a waiting one stays among the newest.
WAITING_LOOKED_AT = 200


# The orders of the newest replace rows of the trail (every sweep's replacements), as a join
# for `trade_orders o`: two bounded reads however long the trail and the order book are (the
# (action) index newest first, then primary-key lookups). Parameters: ACTION_REPLACE, how many.
NEWEST_REPLACEMENTS_JOIN = (
    "JOIN (SELECT resource_id FROM audit_logs WHERE action = %s AND resource_id IS NOT NULL "
    "ORDER BY id DESC LIMIT %s) r ON r.resource_id = o.id"
)
# Those still NEW with no run and written before a moment: one statement.
WAITING_SQL = (
    f"SELECT o.id, o.created_at, o.params FROM trade_orders o {NEWEST_REPLACEMENTS_JOIN} "
    "WHERE o.status = 'NEW' AND o.run_id IS NULL AND o.created_at <= %s ORDER BY o.created_at, o.id"
)


def replacement_waiting_get(*, now: dt.datetime) -> str | None:
    """An earlier replacement the backend's loop has not picked up WAITING_SECONDS after it
    was written, in words; None when there is none.

    Among the newest WAITING_LOOKED_AT replace rows of the trail (every sweep's), in one
    statement however long the trail and the order book are.
    """
    connection = connections[trading_alias()]
    before = connection.ops.adapt_datetimefield_value(now - dt.timedelta(seconds=WAITING_SECONDS))
    with connection.cursor() as cursor:
        cursor.execute(WAITING_SQL, [ACTION_REPLACE, WAITING_LOOKED_AT, before])
        rows = cursor.fetchall()
    waiting = []
    for order_id, created, raw in rows:
        try:
            params = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError:
            continue
        retry = params.get("direct_retry") if isinstance(params, Mapping) else None
        if isinstance(retry, Mapping) and direct_retry_pending(retry.get("pending")):
            waiting.append((order_id, _aware(created)))
    if not waiting:
        return None
    order_id, created = waiting[0]
    return (
        f"replacement {order_id} has waited {age_text((now - created).total_seconds())} for the backend's "
        f"direct-order loop ({len(waiting)} waiting): its sender is not running"
    )


def _aware(value: Any) -> dt.datetime:
    """A DATETIME as a raw cursor returns it (naive UTC, or text on SQLite), aware."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def sender_queue_count(*, leaving: Iterable[int] = ()) -> int:
    """Rows the backend's direct-order loop reads before ours: no run, NEW or REJECTED,
    less `leaving` (the direct orders a sweep means to cancel).

    Counted up to LOOP_READS + 1 (past that a replacement would never be read at all).
    """
    queue = TradeOrder.objects.filter(run_id__isnull=True, status__in=("NEW", "REJECTED"))
    gone = sorted(set(leaving))
    if gone:
        queue = queue.exclude(pk__in=gone)
    return queue[: LOOP_READS + 1].count()


def sender_state_get(*, ib: Mapping[str, Any], root: Path, now: dt.datetime) -> SenderState:
    """Would the backend's direct-order loop send a replacement now (rule 10b)?

    `ib`: ib_settings as read for the sweep (its first row, the one the backend reads; an
    api_mode the backend does not know is 'ib' there); the gateway health file, a
    replacement still waiting. The loop's queue is weighed by the plan (sender_queue_count).
    """
    if ib.get("mode") is None:
        return SenderState(api_mode="ib", mode="", blocked=MSG_NO_IB_SETTINGS)
    api_mode = str(ib.get("api_mode") or "ib").strip().lower()
    return SenderState(
        api_mode=api_mode if api_mode in ("ib", "mock") else "ib",
        mode=str(ib["mode"] or "paper").strip().lower() or "paper",
        blocked=gateway_block_read(root),
        waiting=replacement_waiting_get(now=now),
    )


MSG_NO_IB_SETTINGS = "ib_settings has no row: the backend's mode and api_mode are unknown"


def breaker_was_open() -> bool:
    """Whether the last sweep that wrote its audit row had its circuit breaker open.

    The breaker's state lives in the trail every host writes to, so a change is told once
    (one error line, one audit row), not every minute. One index lookup: (action, id).
    """
    last = (
        AuditLog.objects.filter(action=ACTION_SWEEP)
        .order_by("-id")
        .annotate(open=KT("detail__circuit_open"))
        .values_list("open", flat=True)
        .first()
    )
    # ->> gives 'true' on MySQL/MariaDB, 1 on SQLite.
    return last in (True, 1, "true", "1")


# The run's params the sweep reads (never the whole object: a run's params hold its price
# map and more): its resume state for rule 7c, how its orders are sent for the replacement.
RUN_PLACEMENT_KEYS = (
    "auto_resume",
    "auto_resume_attempt",
    "auto_recovery",
    "allow_outside_rth",
    "adaptive_priority",
)


def run_facts_get(run_ids: Iterable[int | None]) -> dict[int, RunFacts]:
    """What the sweep needs of each run, in one query (a few keys of its params)."""
    wanted = sorted({r for r in run_ids if r is not None})
    if not wanted:
        return {}
    rows = TradeRun.objects.filter(pk__in=wanted).values_list(
        "id",
        "project_id",
        "mode",
        KT("params__lean_execution__output_dir"),
        "status",
        "decision_snapshot_id",
        *(f"params__{key}" for key in RUN_PLACEMENT_KEYS),
    )
    facts = {}
    for run_id, project, mode, output_dir, status, snapshot_id, *keys in rows:
        placement = RunPlacement(
            decision_snapshot_id=snapshot_id, **dict(zip(RUN_PLACEMENT_KEYS, keys, strict=True))
        )
        facts[run_id] = RunFacts(project, mode or "paper", output_dir, status, placement)
    return facts


def _params(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def order_snapshot(
    order: TradeOrder,
    *,
    runs: Mapping[int, tuple[int, str]],
    run_statuses: Mapping[int, str | None] | None = None,
    run_placements: Mapping[int, RunPlacement] | None = None,
) -> OrderSnapshot:
    """The order as the pure core sees it; `run_statuses` and `run_placements`: what was
    read of its run, when looked up."""
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
        run_id=order.run_id,
        run_status=(run_statuses or {}).get(order.run_id) if order.run_id is not None else None,
        run=(run_placements or {}).get(order.run_id) if order.run_id is not None else None,
    )


def ib_target_get() -> tuple[str, int, str, str | None]:
    """host, port, api_mode, mode of the IB gateway: ib_settings' lowest id (the row the
    backend reads), else the env fallback with no mode (the backend's is then unknown)."""
    row = IbSettings.objects.order_by("id").first()
    if row is None:
        return django_settings.IB_HOST, django_settings.IB_PORT, "ib", None
    return row.host, row.port, row.api_mode, row.mode


@dataclass(frozen=True)
class SweepGates:
    """The facts that hold for a whole sweep, read once before any order is decided."""

    ib: dict[str, Any]  # host, port, api_mode; probed, reachable, detail
    market: Any
    blackout: Any
    new_york_time: str
    halted: frozenset[tuple[int, str]]
    quotes: QuotesSnapshot
    open_orders: OpenOrdersSnapshot
    bridge_root: Path
    bridge_problem: str | None
    clock_skew_seconds: float | None = None  # the database's clock minus this host's (rule 1c)
    read_at: dt.datetime | None = None  # the sweep's moment of this read
    sender: SenderState | None = None  # the backend's direct-order loop (rule 10b), read when probed

    @property
    def ib_reachable(self) -> bool:
        return bool(self.ib["reachable"])


def sweep_gates_get(*, config: AutoRecoveryConfig, now: dt.datetime, probe: bool) -> SweepGates:
    """IB, market hours, blackout, today's halts, the bridge root and its snapshots.

    `probe`: open a socket to the gateway now; the sweep does it only once there is
    something to decide (sweep_gates_probed), not every idle minute.
    """
    host, port, api_mode, ib_mode = ib_target_get()
    local = now.astimezone(NEW_YORK).time()
    root = django_settings.LEAN_BRIDGE_ROOT
    sweep = SweepGates(
        ib={
            "probed": False,
            "reachable": False,
            "host": host,
            "port": port,
            "api_mode": api_mode,
            "mode": ib_mode,
            "detail": "not probed: no candidates",
        },
        market=market_state_get(now=now),
        blackout=next((w for w in config.blackout_windows if w.contains(local)), None),
        new_york_time=local.strftime("%H:%M"),
        halted=halted_today_get(now=now),
        quotes=quotes_read(root=root, now=now, max_age_seconds=django_settings.BRIDGE_QUOTES_MAX_AGE_SECONDS),
        open_orders=open_orders_read(
            root=root, now=now, max_age_seconds=django_settings.BRIDGE_OPEN_ORDERS_MAX_AGE_SECONDS
        ),
        bridge_root=root,
        bridge_problem=root_problem_get(root),
        clock_skew_seconds=database_clock_skew(using=trading_alias()),
        read_at=now,
    )
    return sweep_gates_probed(sweep) if probe else sweep


def sweep_gates_probed(sweep: SweepGates) -> SweepGates:
    """The same facts with the gateway probed (at the address already read) and the
    backend's sender read: both only once there is something to decide."""
    ib = sweep.ib
    result = ib_probe(
        host=ib["host"],
        port=ib["port"],
        api_mode=ib["api_mode"],
        timeout=django_settings.IB_PROBE_TIMEOUT_SECONDS,
    )
    assert sweep.read_at is not None
    return replace(
        sweep,
        ib={**ib, "probed": True, "reachable": bool(result.reachable), "detail": result.detail},
        sender=sender_state_get(ib=ib, root=sweep.bridge_root, now=sweep.read_at),
    )


def evidence_get(
    *,
    orders: Sequence[OrderSnapshot],
    runs: Mapping[int, RunFacts],
    sweep: SweepGates,
    now: dt.datetime,
) -> EvidenceGathered:
    """What the broker's files say about each of `orders` (each folder and file read once)."""
    requests = [
        EvidenceRequest(
            order_id=o.id,
            run_id=o.run_id,
            output_dir=runs[o.run_id].output_dir if o.run_id in runs else None,
            run_missing=o.run_id is not None and o.run_id not in runs,
            side=o.side,
            symbol=o.symbol,
            baseline=o.params.get("positions_baseline"),
            tags=order_tags(order_id=o.id, client_order_id=o.client_order_id, params=o.params),
            command=submit_command_get(o.params),
            created_at=o.created_at,
        )
        for o in orders
    ]
    return evidence_gather(
        root=sweep.bridge_root,
        requests=requests,
        now=now,
        path_map=django_settings.BRIDGE_PATH_MAP,
        open_orders_max_age=django_settings.BRIDGE_OPEN_ORDERS_MAX_AGE_SECONDS,
        events_max_bytes=django_settings.BRIDGE_EVENTS_MAX_READ_BYTES,
        clock_skew_seconds=django_settings.BRIDGE_EVENTS_CLOCK_SKEW_SECONDS,
        store=events_store(),
        root_snapshot=sweep.open_orders,
    )


_EVENTS_STORES: dict[Path, LedgerStore] = {}


def events_store() -> LedgerStore:
    """This process's ledgers of the events files, kept on disk for the host's next run.

    One store per folder (a test or another settings module may point elsewhere); the
    folder is host-local, beside the named lock and the audit spool.
    """
    folder = Path(django_settings.AUTO_RECOVER_LOCK_DIR) / EVENTS_STATE_FOLDER
    if folder not in _EVENTS_STORES:
        _EVENTS_STORES[folder] = LedgerStore(folder)
    return _EVENTS_STORES[folder]


def events_stores_clear() -> None:
    """Forget every ledger, in memory and on disk (tests and the demo write files anew)."""
    for folder in _EVENTS_STORES:
        shutil.rmtree(folder, ignore_errors=True)
    _EVENTS_STORES.clear()
    shutil.rmtree(Path(django_settings.AUTO_RECOVER_LOCK_DIR) / EVENTS_STATE_FOLDER, ignore_errors=True)


def orders_with_evidence(
    rows: Sequence[TradeOrder], *, runs: dict[int, tuple[int, str]], sweep: SweepGates, now: dt.datetime
) -> tuple[list[OrderSnapshot], EvidenceGathered]:
    """The rows as the pure core sees them (their runs' statuses read now) and what the
    broker's files say about them. `runs` (run_id -> (project_id, mode)) gains their runs."""
    facts = run_facts_get(r.run_id for r in rows)
    runs.update({run_id: (f.project_id, f.mode) for run_id, f in facts.items()})
    statuses = {run_id: f.status for run_id, f in facts.items()}
    placements = {run_id: f.placement for run_id, f in facts.items()}
    snapshots = [order_snapshot(r, runs=runs, run_statuses=statuses, run_placements=placements) for r in rows]
    return snapshots, evidence_get(orders=snapshots, runs=facts, sweep=sweep, now=now)


def gates_state(sweep: SweepGates, *, evidence: Mapping[int, OrderEvidence]) -> GateState:
    return GateState(
        ib_reachable=sweep.ib_reachable,
        market_open=sweep.market.is_open,
        bridge_problem=sweep.bridge_problem,
        evidence=evidence,
        in_blackout=sweep.blackout is not None,
        halted=sweep.halted,
        quotes=dict(sweep.quotes.prices) if sweep.quotes.available else None,
        clock_skew_seconds=sweep.clock_skew_seconds,
        clock_tolerance_seconds=django_settings.AUTO_RECOVER_CLOCK_TOLERANCE_SECONDS,
        sender=sweep.sender,
    )


def gates_report(sweep: SweepGates, *, evidence: dict[str, Any] | None) -> dict[str, Any]:
    """What the operator sees: the sweep's facts, with their sources."""
    market = sweep.market
    return {
        "ib": sweep.ib,
        "market": {
            "open": market.is_open,
            "session_open": _iso(market.session_open),
            "session_close": _iso(market.session_close),
            "next_open": _iso(market.next_open),
            "next_close": _iso(market.next_close),
        },
        "blackout": {
            "active": sweep.blackout is not None,
            "window": sweep.blackout.as_dict() if sweep.blackout else None,
            "new_york_time": sweep.new_york_time,
        },
        "halted": sorted(
            [{"project_id": p, "mode": m} for p, m in sweep.halted],
            key=lambda h: (h["project_id"], h["mode"]),
        ),
        "quotes": _bridge_report(sweep.quotes, count=len(sweep.quotes.prices)),
        "open_orders": _bridge_report(sweep.open_orders, count=len(sweep.open_orders.tags)),
        "sender": _sender_report(sweep.sender),
        "clock": {
            "database_minus_host_seconds": sweep.clock_skew_seconds,
            "tolerance_seconds": django_settings.AUTO_RECOVER_CLOCK_TOLERANCE_SECONDS,
            "measured": sweep.clock_skew_seconds is not None,
        },
        "broker_evidence": evidence or _bridge_root_report(sweep),
    }


def gates_get(*, config: AutoRecoveryConfig, now: dt.datetime, orders: Sequence[OrderSnapshot]) -> Gates:
    """Every outside fact for `orders`, read once before any of them is decided."""
    sweep = sweep_gates_get(config=config, now=now, probe=bool(orders))
    runs = run_facts_get(o.run_id for o in orders)
    gathered = evidence_get(orders=orders, runs=runs, sweep=sweep, now=now)
    return Gates(
        state=gates_state(sweep, evidence=gathered.orders),
        report=gates_report(sweep, evidence=gathered.report),
    )


def _sender_report(sender: SenderState | None) -> dict[str, Any]:
    """The backend's direct-order loop as this read saw it (rule 10b)."""
    if sender is None:
        return {"read": False, "ready": False, "problem": "not read: no candidates"}
    problem = sender.sweep_problem()
    return {
        "read": True,
        "ready": problem is None,
        "problem": problem,
        "api_mode": sender.api_mode,
        "mode": sender.mode,
    }


def _bridge_root_report(sweep: SweepGates) -> dict[str, Any]:
    problem = sweep.bridge_problem
    return {"root": str(sweep.bridge_root), "available": problem is None, "problem": problem}


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
