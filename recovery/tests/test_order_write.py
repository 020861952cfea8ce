"""One order's write when another writer wins: changed_concurrently, one retry, write_failed.

On both engines: an order another sweep recovered (or the broker acknowledged) after it
was read. On MariaDB: deadlocks and other errors injected into the conditional cancel
(recovery.tests.faults), and the round trips one recovered order costs.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connections

from recovery import selectors
from recovery.db.audit import ACTION_CANCEL, ACTION_SWEEP
from recovery.db.models import AuditLog, SweepRun, TradeOrder, TradeRun, TradeSettings
from recovery.db.routers import trading_alias
from recovery.db.transactions import order_transactions
from recovery.ops.runs import sweep_run_recorded
from recovery.services import sweep_run
from recovery.services.order import SweepContext
from recovery.services.order_write import order_write
from recovery.sweep.decisions import Action, Reason, decide
from recovery.sweep.results import SweepResult
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order
from recovery.tests.faults import faults_installed


def decided_now(order: TradeOrder) -> tuple:
    """The order as a sweep read and decided it at CLOCK, and that sweep's context."""
    config = selectors.settings_in_force_get().config
    snapshot = selectors.order_snapshot(TradeOrder.objects.get(pk=order.pk), runs={})
    gates = selectors.gates_get(config=config, now=CLOCK, orders=[snapshot])
    decision = decide(snapshot, gates=gates.state, settings=config, now=CLOCK)
    result = SweepResult(
        sweep_id="late", actor="t", dry_run=False, now=CLOCK, settings=config, settings_warnings=[], gates={}
    )
    context = SweepContext(gates=gates.state, config=config, runs={}, result=result, clock=lambda: CLOCK)
    return snapshot, decision, context


def write(snapshot, decision, context):  # noqa: ANN001, ANN201
    with order_transactions(using=trading_alias()) as transactions:
        return order_write(snapshot, decision, context=context, transactions=transactions)


# --- both engines ---------------------------------------------------------------------


def test_a_run_that_started_again_before_the_lock_keeps_its_order(trading) -> None:  # noqa: ANN001
    """Rule 3b again under the row lock, with the run's status as it is at that moment."""
    TradeSettings.objects.update(auto_recovery={"replace_run_orders": True})
    run = factories.TradeRunFactory(status="done")  # no decision snapshot: the backend never resumes it
    order = stale_order(client_order_id="resumed", run_id=run.pk)
    snapshot, decision, context = decided_now(order)
    assert decision.action is Action.REPLACE
    TradeRun.objects.filter(pk=run.pk).update(status="running")
    outcome = write(snapshot, decision, context)
    assert (outcome.decision, outcome.reason) == (Action.SKIP, Reason.CHANGED_CONCURRENTLY)
    assert "owned_by_backend" in outcome.detail
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_the_replacements_attempt_comes_from_the_row_as_locked_not_the_earlier_read(trading) -> None:  # noqa: ANN001
    """Between the read and the lock another writer moved the order one step along its chain."""
    TradeSettings.objects.update(auto_recovery={"max_auto_retries": 3})
    order = stale_order(client_order_id="chain-0")
    snapshot, decision, context = decided_now(order)
    assert decision.attempt == 0
    chain = {"attempts": 1, "root_order_id": 7, "root_client_order_id": "chain"}
    TradeOrder.objects.filter(pk=order.pk).update(params={"auto_recovery": chain})
    outcome = write(snapshot, decision, context)
    assert (outcome.decision, outcome.replacement_client_order_id) == (Action.REPLACE, "chain-r2")
    replacement = TradeOrder.objects.get(pk=outcome.replacement_id)
    assert replacement.params["auto_recovery"]["attempts"] == 2


def test_an_order_another_sweep_recovered_first_is_changed_concurrently_naming_it(trading) -> None:  # noqa: ANN001
    order = stale_order(client_order_id="won-elsewhere")
    snapshot, decision, context = decided_now(order)
    assert decision.action is Action.REPLACE
    first = sweep_run(now=CLOCK, actor="other-host")
    replacement = first.orders[0]

    late = write(snapshot, decision, context)

    assert (late.decision, late.reason) == (Action.SKIP, Reason.CHANGED_CONCURRENTLY)
    assert late.now_status == "CANCELED"
    assert late.detail == (
        f"cancelled by another sweep (sweep {first.sweep_id}), "
        f"replacement {replacement.replacement_id} won-elsewhere-r1"
    )
    assert late.replacement_id is None  # not this sweep's replacement
    assert TradeOrder.objects.filter(client_order_id__startswith="won-elsewhere").count() == 2
    assert AuditLog.objects.filter(action=ACTION_CANCEL).count() == 1


def test_an_order_whose_replacement_id_is_taken_is_cancelled_once_not_failed_every_minute(trading) -> None:  # noqa: ANN001
    """Someone else's row holds `<id>-r1` already: the insert can never succeed, so the order is
    cancelled without a replacement (its evidence passed like any other cancel), saying whose
    id it is; the next run has nothing left to fail on. (Before: write_failed, exit 1, forever.)
    """
    order = stale_order(client_order_id="taken")
    holder = factories.TradeOrderFactory(client_order_id="taken-r1", status="FILLED", filled_quantity=10)
    result = sweep_run(now=CLOCK, actor="test")
    (outcome,) = result.orders
    assert (outcome.decision, outcome.reason) == (Action.CANCEL, Reason.REPLACEMENT_ID_TAKEN)
    assert (
        outcome.detail == f"taken-r1 is order {holder.pk} already (FILLED): cancelled without a replacement"
    )
    assert result.failed == 0 and result.replaced == 0
    order.refresh_from_db()
    assert (
        order.status == "CANCELED" and order.params["auto_recovery"]["last_reason"] == "replacement_id_taken"
    )
    assert TradeOrder.objects.count() == 2
    assert AuditLog.objects.get(action=ACTION_CANCEL).detail["reason"] == "replacement_id_taken"
    assert sweep_run(now=CLOCK + dt.timedelta(seconds=1), actor="test").scanned == 0


def test_an_order_the_broker_acknowledged_meanwhile_is_changed_concurrently_saying_so(trading) -> None:  # noqa: ANN001
    order = stale_order()
    snapshot, decision, context = decided_now(order)
    TradeOrder.objects.filter(pk=order.pk).update(status="SUBMITTED", ib_order_id=77, ib_perm_id=88)

    late = write(snapshot, decision, context)

    assert (late.reason, late.now_status) == (Reason.CHANGED_CONCURRENTLY, "SUBMITTED")
    assert late.detail == "now SUBMITTED, acknowledged by the broker (ib_order_id 77, ib_perm_id 88)"
    assert TradeOrder.objects.get(pk=order.pk).status == "SUBMITTED"


def test_an_order_deleted_meanwhile_is_changed_concurrently(trading) -> None:  # noqa: ANN001
    order = stale_order()
    snapshot, decision, context = decided_now(order)
    TradeOrder.objects.filter(pk=order.pk).delete()
    late = write(snapshot, decision, context)
    assert (late.reason, late.detail, late.now_status) == (
        Reason.CHANGED_CONCURRENTLY,
        "the order no longer exists",
        None,
    )


# --- MariaDB: injected conflicts --------------------------------------------------------


@pytest.fixture
def faults(committed_db, bridge):  # noqa: ANN001, ANN201
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    with faults_installed() as installed:
        yield installed


@pytest.mark.mysql
def test_a_deadlock_with_the_order_still_new_is_retried_once_and_recovers(faults) -> None:  # noqa: ANN001
    order = stale_order()
    faults.add(order.pk, times=1, errno=1213)
    result = sweep_run(now=CLOCK, actor="t")
    assert faults.remaining(order.pk) == 0  # the first try hit the deadlock
    assert (result.orders[0].decision, result.orders[0].reason) == (Action.REPLACE, Reason.REPLACED)
    assert (result.cancelled, result.failed) == (1, 0)
    assert TradeOrder.objects.get(pk=order.pk).status == "CANCELED"


@pytest.mark.mysql
@pytest.mark.parametrize("errno", [1213, 1205])
def test_two_conflicts_with_the_order_still_new_are_write_failed(faults, errno: int) -> None:  # noqa: ANN001
    order, other = stale_order(), stale_order(age=100)
    faults.add(order.pk, times=5, errno=errno)
    report = sweep_run_recorded(now=CLOCK, actor="t")
    result = report.result
    assert faults.remaining(order.pk) == 3  # two tries, no third
    failed = next(o for o in result.orders if o.id == order.pk)
    assert (failed.reason, failed.now_status) == (Reason.WRITE_FAILED, "NEW")
    assert str(errno) in failed.detail
    assert (result.cancelled, result.failed) == (1, 1)  # the other order is unaffected
    assert report.outcome is SweepRun.Outcome.FAILED
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"
    assert TradeOrder.objects.get(pk=other.pk).status == "CANCELED"
    assert not AuditLog.objects.filter(action=ACTION_CANCEL, resource_id=order.pk).exists()
    assert AuditLog.objects.filter(action=ACTION_SWEEP).count() == 1


@pytest.mark.mysql
def test_another_error_is_write_failed_without_a_retry(faults) -> None:  # noqa: ANN001
    order = stale_order()
    faults.add(order.pk, times=2, errno=1644)
    result = sweep_run(now=CLOCK, actor="t")
    assert faults.remaining(order.pk) == 1
    assert result.orders[0].reason is Reason.WRITE_FAILED
    assert "1644" in result.orders[0].detail


@pytest.mark.mysql
def test_a_conflict_while_the_executor_acknowledges_the_order_is_not_a_failure(faults) -> None:  # noqa: ANN001
    """The executor's UPDATE waits for our row lock; our deadlock rolls back; it wins."""
    order = stale_order()
    faults.add(order.pk, times=2, errno=1213, sleep_seconds=0.5)
    settings_dict = connections[trading_alias()].settings_dict
    import MySQLdb

    executor = MySQLdb.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=int(settings_dict["PORT"] or 3306),
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"],
        database=settings_dict["NAME"],
        autocommit=True,
    )

    def acknowledge() -> None:
        with executor.cursor() as cursor:
            # Until the sweep's first try sleeps inside the trigger, holding the row lock.
            for _ in range(500):
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE = 'User sleep'"
                )
                if cursor.fetchone()[0]:
                    break
                threading.Event().wait(0.01)
            # The executor's own statement skips the trigger's fault: it is not the order's cancel.
            cursor.execute("UPDATE test_faults SET remaining = 0 WHERE order_id = %s", [order.pk])
            cursor.execute(
                "UPDATE trade_orders SET status = 'SUBMITTED', ib_order_id = 5"
                " WHERE id = %s AND status = 'NEW'",
                [order.pk],
            )

    thread = threading.Thread(target=acknowledge)
    thread.start()
    result = sweep_run(now=CLOCK, actor="t")
    thread.join()
    executor.close()
    outcome = result.orders[0]
    assert (outcome.decision, outcome.reason, result.failed) == (Action.SKIP, Reason.CHANGED_CONCURRENTLY, 0)
    assert TradeOrder.objects.get(pk=order.pk).status == "SUBMITTED"
    assert not AuditLog.objects.filter(action=ACTION_CANCEL).exists()


@pytest.mark.mysql
@pytest.mark.parametrize("in_a_run", [False, True])
def test_one_recovered_order_costs_five_round_trips(committed_db, bridge, in_a_run: bool) -> None:  # noqa: ANN001
    """Lock, cancel, replacement, audit rows, COMMIT: no SET autocommit around each order, and
    for a run's order no read of its own for the run's status (it comes with the lock)."""
    factories.TradeSettingsFactory(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "replace_run_orders": True,
        }
    )
    factories.IbSettingsFactory()
    run_id = factories.TradeRunFactory(status="done").pk if in_a_run else None

    def questions_for(count: int) -> int:
        TradeOrder.objects.all().delete()
        for i in range(count):
            stale_order(age=100 + i, run_id=run_id)
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            before = int(cursor.fetchone()[1])
            result = sweep_run(now=CLOCK, actor="t")
            cursor.execute("SHOW SESSION STATUS LIKE 'Questions'")
            after = int(cursor.fetchone()[1])
        assert result.replaced == count
        return after - before

    assert (questions_for(7) - questions_for(2)) / 5 == 5
