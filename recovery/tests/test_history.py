"""Each order's decision history: one row per distinct (decision, reason), first and last."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext

from recovery.db.audit import ACTION_CANCEL, ACTION_SWEEP
from recovery.db.history import DecisionEntry, decision_history_prune, decision_history_write
from recovery.db.models import AuditLog, OrderDecision, TradeOrder
from recovery.db.timestamps import iso_utc
from recovery.gates.guard import trade_date_for
from recovery.ops.runs import sweep_run_recorded
from recovery.services import plan as plan_module
from recovery.services import sweep_run
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, is_mysql, stale_order

CANCEL_ONLY = {"max_auto_retries": 0}  # every stale order: cancel only, retries_exhausted


def later(seconds: float) -> dt.datetime:
    return CLOCK + dt.timedelta(seconds=seconds)


def history(order: TradeOrder) -> list[OrderDecision]:
    return list(OrderDecision.objects.filter(order_id=order.pk).order_by("first_at", "id"))



def test_a_sweep_records_every_order_it_gave_a_decision_skips_included(trading) -> None:  # noqa: ANN001
    factories.TradeSettingsFactory(auto_recovery=CANCEL_ONLY)
    cancelled = stale_order(age=300)
    factories.TradeGuardStateFactory(project_id=7, status="halted", trade_date=trade_date_for(CLOCK))
    halted = stale_order(age=200, params={"project_id": 7})  # left out in SQL, listed
    listed = stale_order(age=100)
    trading.open_orders([listed.client_order_id])

    result = sweep_run(now=CLOCK, actor="auto_recover", clock=lambda: later(30))

    sweep_row = AuditLog.objects.get(action=ACTION_SWEEP)
    assert [(h.decision, h.reason) for h in history(cancelled)] == [("cancel", "retries_exhausted")]
    assert [(h.decision, h.reason) for h in history(halted)] == [("skip", "guard_halted")]
    assert [(h.decision, h.reason) for h in history(listed)] == [("skip", "open_at_broker")]
    row = history(cancelled)[0]
    # Stamped with the moment of the write (the sweep's clock), never the sweep's start.
    assert (row.first_at, row.last_at) == (later(30), later(30))
    assert (row.first_sweep_id, row.last_sweep_id, row.times) == (result.sweep_id, result.sweep_id, 1)
    assert (row.first_audit_id, row.last_audit_id) == (sweep_row.pk, sweep_row.pk)
    assert (row.client_order_id, row.last_actor) == (cancelled.client_order_id, "auto_recover")
    assert "project/mode is halted" in history(halted)[0].detail


def test_orders_a_run_only_counts_have_their_history_too(trading, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Past the 20 halted orders a run lists, and past the skips it lists, orders are only
    counted in its report: each still gets its (decision, reason) in the history, up to the
    run's bound."""
    monkeypatch.setattr(plan_module, "SKIPPED_LISTED_MAX", 3)
    factories.TradeSettingsFactory(auto_recovery=CANCEL_ONLY)
    factories.TradeGuardStateFactory(project_id=7, status="halted", trade_date=trade_date_for(CLOCK))
    halted = [stale_order(age=300 + i, params={"project_id": 7}) for i in range(25)]
    pending = {"submit_command": {"pending": True, "requested_at": iso_utc(later(-10))}}
    sending = [stale_order(age=100 + i, params=pending) for i in range(6)]  # rule 3b, decided one by one

    result = sweep_run(now=CLOCK, actor="auto_recover", clock=lambda: later(30))

    assert result.omitted == {"guard_halted": 5, "owned_by_backend": 3}  # counted, not listed
    for orders, reason in ((halted, "guard_halted"), (sending, "owned_by_backend")):
        assert all([(h.decision, h.reason) for h in history(o)] == [("skip", reason)] for o in orders)
    assert "unlisted" not in result.as_dict()


def test_the_orders_kept_for_the_history_are_bounded(trading, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(plan_module, "UNLISTED_KEPT_MAX", 4)
    factories.TradeGuardStateFactory(project_id=7, status="halted", trade_date=trade_date_for(CLOCK))
    for i in range(30):
        stale_order(age=300 + i, params={"project_id": 7})
    result = sweep_run(now=CLOCK, actor="auto_recover", clock=lambda: later(30))
    assert result.omitted == {"guard_halted": 10}
    assert len(result.unlisted) == 4
    assert OrderDecision.objects.count() == 24  # 20 listed + 4 kept


def test_the_same_pair_again_moves_last_and_counts_a_new_pair_gets_its_own_row(trading) -> None:  # noqa: ANN001
    order = stale_order(age=100)
    trading.open_orders([order.client_order_id])
    first = sweep_run(now=CLOCK, actor="auto_recover", clock=lambda: CLOCK)
    trading.open_orders([order.client_order_id], at=later(60))
    second = sweep_run(now=later(60), actor="admin:ops", clock=lambda: later(61))

    (row,) = history(order)
    assert (row.first_at, row.last_at, row.times) == (CLOCK, later(61), 2)
    assert (row.first_sweep_id, row.last_sweep_id) == (first.sweep_id, second.sweep_id)
    assert row.last_actor == "admin:ops"
    assert row.first_audit_id is None  # a sweep that only skipped writes no audit row

    trading.open_orders([], at=later(120))  # no longer listed: now it is cancelled
    factories.TradeSettingsFactory(auto_recovery=CANCEL_ONLY)
    sweep_run(now=later(120), actor="auto_recover", clock=lambda: later(121))
    assert [(h.decision, h.reason, h.times) for h in history(order)] == [
        ("skip", "open_at_broker", 2),
        ("cancel", "retries_exhausted", 1),
    ]


def test_dry_runs_and_previews_record_nothing(trading) -> None:  # noqa: ANN001
    stale_order(age=100)
    sweep_run(now=CLOCK, actor="admin:ops", dry_run=True)
    assert not OrderDecision.objects.exists()


def test_a_history_the_database_refuses_never_touches_the_orders_or_the_run(
    committed_db,  # noqa: ANN001
    bridge,  # noqa: ANN001
    sweep_log: list[str],
) -> None:
    factories.TradeSettingsFactory(auto_recovery=CANCEL_ONLY)
    factories.IbSettingsFactory()
    order = stale_order(age=100)
    table = OrderDecision._meta.db_table
    connection = connections[DEFAULT_DB_ALIAS]
    if is_mysql():
        trigger = (
            f"CREATE TRIGGER test_history_refused BEFORE INSERT ON {table} FOR EACH ROW "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'history refused'"
        )
    else:
        trigger = (
            f"CREATE TRIGGER test_history_refused BEFORE INSERT ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'history refused'); END"
        )
    with connection.cursor() as cursor:
        cursor.execute(trigger)
    try:
        report = sweep_run_recorded(now=CLOCK, actor="auto_recover")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_history_refused")

    assert report.outcome == "ok"
    assert report.result is not None and report.result.cancelled == 1
    assert TradeOrder.objects.get(pk=order.pk).status == "CANCELED"
    assert AuditLog.objects.filter(action=ACTION_CANCEL, resource_id=order.pk).count() == 1
    assert report.heartbeat is not None
    assert not OrderDecision.objects.exists()
    assert any("could not record 1 order decision(s) in the history" in line for line in sweep_log)


def entries(count: int) -> list[DecisionEntry]:
    return [DecisionEntry(i, f"c{i}", "skip", "guard_halted") for i in range(1, count + 1)]


@pytest.mark.django_db
def test_a_thousand_orders_take_three_statements() -> None:
    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as queries:
        statements = decision_history_write(
            entries(1200), now=CLOCK, sweep_id="s1", actor="auto_recover", audit_id=None
        )
    assert statements == len(queries.captured_queries) == 3
    assert OrderDecision.objects.count() == 1200
    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as queries:
        decision_history_write(entries(1200), now=later(60), sweep_id="s2", actor="auto_recover", audit_id=9)
    assert len(queries.captured_queries) == 3
    assert set(
        OrderDecision.objects.values_list("times", "first_sweep_id", "last_sweep_id", "last_audit_id")
    ) == {(2, "s1", "s2", 9)}


@pytest.mark.django_db
def test_a_pair_named_twice_in_one_sweep_counts_once() -> None:
    twice = [DecisionEntry(5, "c5", "skip", "guard_halted"), DecisionEntry(5, "c5", "skip", "guard_halted")]
    decision_history_write(twice, now=CLOCK, sweep_id="s1", actor="auto_recover", audit_id=None)
    assert list(OrderDecision.objects.values_list("order_id", "times")) == [(5, 1)]


@pytest.mark.django_db
def test_long_texts_are_cut_to_their_columns() -> None:
    long = DecisionEntry(5, "c" * 80, "skip", "submit_in_flight", detail="d" * 2000)
    decision_history_write([long], now=CLOCK, sweep_id="s" * 40, actor="a" * 80, audit_id=None)
    row = OrderDecision.objects.get()
    assert (len(row.client_order_id), len(row.detail), len(row.last_sweep_id), len(row.last_actor)) == (
        64,
        500,
        32,
        64,
    )


@pytest.mark.django_db
def test_rows_not_given_again_within_the_retention_are_pruned(settings) -> None:  # noqa: ANN001
    settings.RECOVERY_HISTORY_RETENTION_DAYS = 30
    decision_history_write(
        entries(3), now=CLOCK - dt.timedelta(days=31), sweep_id="old", actor="x", audit_id=None
    )
    decision_history_write(
        entries(1), now=CLOCK - dt.timedelta(days=29), sweep_id="new", actor="x", audit_id=None
    )
    assert decision_history_prune(now=CLOCK) == 2  # order 1 was given again since
    assert list(OrderDecision.objects.values_list("order_id", flat=True)) == [1]
    assert decision_history_prune(now=CLOCK) == 0


def test_a_real_sweep_prunes_old_rows(trading, settings) -> None:  # noqa: ANN001
    settings.RECOVERY_HISTORY_RETENTION_DAYS = 30
    decision_history_write(
        entries(2), now=CLOCK - dt.timedelta(days=40), sweep_id="old", actor="x", audit_id=None
    )
    sweep_run(now=CLOCK, actor="auto_recover")  # idle: nothing recorded, nothing pruned (a query saved)
    assert OrderDecision.objects.filter(last_sweep_id="old").count() == 2
    stale_order(age=100)
    sweep_run(now=CLOCK, actor="auto_recover")
    assert not OrderDecision.objects.filter(last_sweep_id="old").exists()
