"""Sweeps against each other and against the backend, on real MariaDB connections.

docs/design.md, "Several hosts": what holds across hosts is the row level (the conditional
cancel, SELECT ... FOR UPDATE SKIP LOCKED, the unique client_order_id of a
replacement); the named lock only keeps runs on one server apart. Every test here runs
real threads, each on its own Django connection, over committed rows.
"""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from recovery import selectors
from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP
from recovery.db.locks import sweep_lock
from recovery.db.models import AuditLog, TradeOrder
from recovery.db.routers import trading_alias
from recovery.gates.market_hours import market_state_get
from recovery.services import sweep_run
from recovery.sweep.decisions import Action, Reason
from recovery.sweep.results import SweepResult
from recovery.tests import factories

pytestmark = pytest.mark.mysql

ACTOR = "auto_recover"
WAIT = 30  # seconds a thread waits for its cue before giving up: a safety net, not a threshold
# If SKIP LOCKED were missing, the sweep would wait for the row lock; fail in seconds, not 50.
LOCK_WAIT_SECONDS = 3


class Worker(threading.Thread):
    """Runs `work` on its own connection and keeps its result or its exception."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # handed to the test thread by outcome()
            self.error = exc
        finally:
            connection.close()
            connections[trading_alias()].close()

    def outcome(self) -> Any:
        self.join(WAIT)
        assert not self.is_alive(), "worker thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def in_other_connection(work: Callable[[], Any]) -> Any:
    worker = Worker(work)
    worker.start()
    return worker.outcome()


def recovery_configured(**auto_recovery: Any) -> None:
    factories.TradeSettingsFactory(
        auto_recovery={
            "max_replacements_per_sweep": 1000,
            "max_replacements_per_hour": 10000,
            **auto_recovery,
        }
    )
    factories.IbSettingsFactory()


def stale_orders_create(count: int, *, clock: dt.datetime) -> list[TradeOrder]:
    """`count` committed stale MKT orders, oldest first."""
    orders = []
    for i in range(count):
        created = clock - dt.timedelta(seconds=600 - i)
        orders.append(factories.TradeOrderFactory.build(created_at=created, updated_at=created))
    TradeOrder.objects.bulk_create(orders)
    return list(TradeOrder.objects.order_by("created_at", "id"))


def replacements_by_origin() -> dict[int, list[TradeOrder]]:
    found: dict[int, list[TradeOrder]] = {}
    for order in TradeOrder.objects.all():
        recovery = order.params.get("auto_recovery") if isinstance(order.params, dict) else None
        if isinstance(recovery, dict) and "origin_order_id" in recovery:
            found.setdefault(recovery["origin_order_id"], []).append(order)
    return found


def audit_ids(action: str) -> Counter[int]:
    return Counter(AuditLog.objects.filter(action=action).values_list("resource_id", flat=True))


def outcomes_by_id(result: SweepResult) -> dict[int, Any]:
    return {o.id: o for o in result.orders}


# Fewer than the 150 rows the backend's direct-order loop may have ahead of a replacement
# (rule 10b): no loop runs here to take the replacements away, so all of them fit at once.
ORDERS = 140


def test_two_sweeps_at_once_recover_every_order_exactly_once(committed_db, bridge, clock) -> None:  # noqa: ANN001
    recovery_configured()
    originals = stale_orders_create(ORDERS, clock=clock)
    original_ids = {o.pk for o in originals}
    # Build the process-wide NYSE calendar here: two threads building it at once race on
    # warnings.catch_warnings (not thread-safe) and leak pandas' deprecation warning.
    market_state_get(now=clock)
    barrier = threading.Barrier(2)

    def sweep() -> SweepResult:
        barrier.wait(WAIT)
        return sweep_run(now=clock, actor=ACTOR)

    workers = [Worker(sweep) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [worker.outcome() for worker in workers]

    statuses = dict(TradeOrder.objects.filter(pk__in=original_ids).values_list("id", "status"))
    assert set(statuses.values()) == {"CANCELED"}
    replacements = replacements_by_origin()
    assert set(replacements) == original_ids
    assert {origin: len(rows) for origin, rows in replacements.items() if len(rows) != 1} == {}
    client_ids = list(TradeOrder.objects.values_list("client_order_id", flat=True))
    assert len(client_ids) == len(set(client_ids)) == 2 * ORDERS
    assert all(rows[0].status == "NEW" for rows in replacements.values())

    cancels, replaces = audit_ids(ACTION_CANCEL), audit_ids(ACTION_REPLACE)
    assert sum(cancels.values()) == ORDERS and set(cancels) == original_ids
    assert set(cancels.values()) == {1}
    assert sum(replaces.values()) == ORDERS
    assert set(replaces) == {rows[0].pk for rows in replacements.values()}

    assert sum(r.cancelled for r in results) == ORDERS
    assert sum(r.replaced for r in results) == ORDERS
    assert sum(r.failed for r in results) == 0
    acted = [o.id for r in results for o in r.orders if o.decision is Action.REPLACE]
    assert sorted(acted) == sorted(original_ids)  # each original by exactly one sweep
    for result in results:
        assert not result.circuit_open
        others = {(o.decision, o.reason) for o in result.orders if o.decision is not Action.REPLACE}
        assert others <= {(Action.SKIP, Reason.CHANGED_CONCURRENTLY)}
        assert {o.id for o in result.orders} <= original_ids  # never a fresh replacement
    assert AuditLog.objects.filter(action=ACTION_SWEEP).count() == sum(1 for r in results if r.cancelled)


def test_an_order_acknowledged_between_selection_and_cancel_is_left_alone(
    committed_db,  # noqa: ANN001
    bridge,  # noqa: ANN001
    clock,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recovery_configured()
    first, chosen, last = stale_orders_create(3, clock=clock)
    real_order_locked_get = selectors.order_locked_get
    acknowledged: list[int] = []

    def acknowledge() -> int:
        return TradeOrder.objects.filter(pk=chosen.pk).update(ib_order_id=424242, status="SUBMITTED")

    def order_locked_get(*, order_id: int) -> TradeOrder | None:
        if order_id == chosen.pk and not acknowledged:
            # The executor's ack lands after the sweep read the order, before it locks it.
            acknowledged.append(in_other_connection(acknowledge))
        return real_order_locked_get(order_id=order_id)

    monkeypatch.setattr(selectors, "order_locked_get", order_locked_get)
    result = sweep_run(now=clock, actor=ACTOR)

    assert acknowledged == [1]
    chosen.refresh_from_db()
    assert (chosen.status, chosen.ib_order_id) == ("SUBMITTED", 424242)
    assert "auto_recovery_cancel" not in chosen.params
    assert chosen.pk not in audit_ids(ACTION_CANCEL)
    assert chosen.pk not in replacements_by_origin()
    outcomes = outcomes_by_id(result)
    assert (outcomes[chosen.pk].decision, outcomes[chosen.pk].reason) == (
        Action.SKIP,
        Reason.CHANGED_CONCURRENTLY,
    )
    for order in (first, last):
        assert outcomes[order.pk].decision is Action.REPLACE
        order.refresh_from_db()
        assert order.status == "CANCELED"
        assert len(replacements_by_origin()[order.pk]) == 1
    assert (result.cancelled, result.replaced, result.skipped) == (2, 2, 1)
    assert set(audit_ids(ACTION_CANCEL)) == {first.pk, last.pk}


def test_a_sweep_skips_an_order_another_connection_has_locked(committed_db, bridge, clock) -> None:  # noqa: ANN001
    recovery_configured()
    first, held, last = stale_orders_create(3, clock=clock)
    locked, sweep_done, release = threading.Event(), threading.Event(), threading.Event()

    def hold() -> bool:
        with transaction.atomic(using=trading_alias()):
            assert list(TradeOrder.objects.select_for_update().filter(pk=held.pk)) == [held]
            locked.set()
            release.wait(WAIT)
            return sweep_done.is_set()  # the sweep ended while this lock was still held

    holder = Worker(hold)
    holder.start()
    trading = connections[trading_alias()]
    try:
        assert locked.wait(WAIT)
        with trading.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = %s", [LOCK_WAIT_SECONDS])
        result = sweep_run(now=clock, actor=ACTOR)
        sweep_done.set()
    finally:
        release.set()
        with trading.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = DEFAULT")
    assert holder.outcome() is True

    outcomes = outcomes_by_id(result)
    assert (outcomes[held.pk].decision, outcomes[held.pk].reason) == (
        Action.SKIP,
        Reason.CHANGED_CONCURRENTLY,
    )
    held.refresh_from_db()
    assert held.status == "NEW"
    assert held.pk not in audit_ids(ACTION_CANCEL)
    assert held.pk not in replacements_by_origin()
    for order in (first, last):
        assert outcomes[order.pk].decision is Action.REPLACE
        order.refresh_from_db()
        assert order.status == "CANCELED"
    assert (result.cancelled, result.replaced, result.skipped, result.failed) == (2, 2, 1, 0)


def test_the_command_exits_quietly_while_another_run_holds_the_lock(committed_db, bridge, clock) -> None:  # noqa: ANN001
    recovery_configured()
    (order,) = stale_orders_create(1, clock=clock)
    held, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with sweep_lock(using=trading_alias()):
            held.set()
            release.wait(WAIT)

    holder = Worker(hold_lock)
    holder.start()
    out = io.StringIO()
    try:
        assert held.wait(WAIT)
        call_command("auto_recover", now=clock, stdout=out)
    finally:
        release.set()
    holder.outcome()

    assert "holds the lock" in out.getvalue()
    order.refresh_from_db()
    assert order.status == "NEW"
    assert TradeOrder.objects.count() == 1
    assert AuditLog.objects.count() == 0

    # Once the lock is free the same command does the work: the lock, nothing else, held it back.
    call_command("auto_recover", now=clock, stdout=io.StringIO())
    order.refresh_from_db()
    assert order.status == "CANCELED"
