"""No head-of-line blocking: `limit` bounds the orders acted on, not the orders looked past."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command

from recovery import selectors
from recovery.db.audit import ACTION_REPLACE
from recovery.db.models import AuditLog, TradeOrder, TradeSettings
from recovery.services import sweep_run
from recovery.services.plan import HELD_BACK_COUNT_MAX, HELD_BACK_LISTED_MAX, SKIPPED_LISTED_MAX, sweep_plan
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.decisions import Reason
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order
from recovery.tests.test_gates_evidence_read import event, write_events

pytestmark = pytest.mark.django_db
NY_TODAY = dt.date(2026, 11, 24)


def halted_run(project_id: int = 9, mode: str = "paper") -> int:
    factories.TradeGuardStateFactory(project_id=project_id, mode=mode, trade_date=NY_TODAY, status="halted")
    return factories.TradeRunFactory(project_id=project_id, mode=mode).pk


def test_healthy_orders_behind_more_halted_ones_than_the_limit_are_recovered(trading) -> None:
    run_id = halted_run()
    stuck = [stale_order(age=3600 - i, run_id=run_id) for i in range(30)]
    healthy = [stale_order(age=120 - i) for i in range(3)]
    result = sweep_run(now=CLOCK, actor="test", limit=5)
    assert result.replaced == 3
    assert {o.id for o in result.orders if o.decision == "replace"} == {o.pk for o in healthy}
    # The halted ones are still reported: counted by reason, a few listed.
    assert result.reasons() == {"guard_halted": 30, "replaced": 3}
    assert (result.scanned, result.skipped) == (33, 30)
    listed = [o for o in result.orders if o.reason is Reason.GUARD_HALTED]
    assert len(listed) == HELD_BACK_LISTED_MAX and listed[0].id == stuck[0].pk
    assert listed[0].detail == "left out of this run's candidate query: its project/mode is halted today"
    assert result.omitted == {"guard_halted": 30 - HELD_BACK_LISTED_MAX}
    assert TradeOrder.objects.filter(pk__in=[o.pk for o in stuck], status="NEW").count() == 30


def test_direct_orders_of_a_halted_project_are_left_out_too(trading) -> None:
    factories.TradeGuardStateFactory(project_id=4, mode="live", trade_date=NY_TODAY, status="halted")
    factories.TradeGuardStateFactory(project_id=5, mode="paper", trade_date=NY_TODAY, status="halted")
    live = stale_order(age=600, params={"project_id": 4, "mode": "live"})
    paper5 = stale_order(age=590, params={"project_id": 5})  # no mode: paper, halted
    result = sweep_run(now=CLOCK, actor="test", limit=20)
    held = {o.id: o.reason for o in result.orders if o.detail and o.detail.startswith("left out")}
    assert held == {live.pk: Reason.GUARD_HALTED, paper5.pk: Reason.GUARD_HALTED}


@pytest.mark.parametrize(
    "params",
    [
        {"project_id": 4},
        {"project_id": 4, "mode": None},
        {"project_id": 4, "mode": "paper"},
        None,
        [1],
        "x",
        {},
    ],
    ids=["no mode", "null mode", "paper", "NULL column", "a list", "a string", "empty"],
)
def test_orders_that_are_not_halted_are_never_left_out(trading, params) -> None:  # noqa: ANN001
    factories.TradeGuardStateFactory(project_id=4, mode="live", trade_date=NY_TODAY, status="halted")
    factories.TradeGuardStateFactory(project_id=5, mode="paper", trade_date=NY_TODAY, status="halted")
    order = stale_order(params=params)
    result = sweep_run(now=CLOCK, actor="test", limit=20)
    assert [(o.id, o.reason) for o in result.orders] == [(order.pk, Reason.REPLACED)]


def test_orders_listed_open_in_the_root_snapshot_do_not_hold_others_back(trading) -> None:
    listed = [stale_order(age=900 - i, client_order_id=f"open-{i}") for i in range(10)]
    trading.open_orders([o.client_order_id for o in listed])
    healthy = stale_order(age=100)
    result = sweep_run(now=CLOCK, actor="test", limit=2)
    assert [o.id for o in result.orders if o.decision == "replace"] == [healthy.pk]
    assert result.reasons() == {"open_at_broker": 10, "replaced": 1}


def test_orders_seen_in_event_files_are_looked_past_batch_by_batch(trading) -> None:
    seen = [stale_order(age=900 - i, client_order_id=f"seen-{i}") for i in range(7)]
    write_events(trading.root, [event(tag=o.client_order_id, at=CLOCK) for o in seen])
    healthy = [stale_order(age=100 - i) for i in range(2)]
    result = sweep_run(now=CLOCK, actor="test", limit=2)
    assert sorted(o.id for o in result.orders if o.decision == "replace") == sorted(o.pk for o in healthy)
    assert result.reasons() == {"replaced": 2, "seen_by_broker": 7}


def test_limit_bounds_the_orders_acted_on(trading) -> None:
    orders = [stale_order(age=600 - i) for i in range(5)]
    result = sweep_run(now=CLOCK, actor="test", limit=3)
    assert [o.id for o in result.orders] == [o.pk for o in orders[:3]]
    assert TradeOrder.objects.filter(pk__in=[o.pk for o in orders[3:]], status="NEW").count() == 2


def test_held_back_counts_stop_at_their_bound_and_say_so(trading, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("recovery.services.plan.HELD_BACK_COUNT_MAX", 25)
    run_id = halted_run()
    for i in range(30):
        stale_order(age=900 - i, run_id=run_id)
    result = sweep_run(now=CLOCK, actor="test")
    assert result.reasons() == {"guard_halted": 25}
    assert result.omitted_capped == ["guard_halted"]
    assert result.as_dict()["omitted_capped"] == ["guard_halted"]
    assert HELD_BACK_COUNT_MAX == 1_000


def test_a_sweep_wide_gate_lists_the_first_limit_orders_and_stops(trading) -> None:
    factories.TradeSettingsFactory(auto_recovery={"enabled": False})
    for i in range(6):
        stale_order(age=600 - i)
    result = sweep_run(now=CLOCK, actor="test", limit=4)
    assert result.reasons() == {"disabled": 4}


def test_skips_past_the_listing_bound_are_counted(trading, settings, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("recovery.services.plan.SKIPPED_LISTED_MAX", 3)
    for i in range(5):
        stale_order(
            age=600 - i,
            params={
                "submit_command": {
                    "pending": True,
                    "expires_at": "2026-11-24T17:00:00Z",
                    "source": "short_lived_fallback",
                }
            },
        )
    healthy = stale_order(age=100)
    result = sweep_run(now=CLOCK, actor="test", limit=10)
    assert result.reasons() == {"replaced": 1, "submit_in_flight": 5}
    assert len(result.orders) == 4 and result.omitted == {"submit_in_flight": 2}
    assert result.as_dict()["omitted"] == {"submit_in_flight": 2}
    assert healthy.pk in {o.id for o in result.orders}
    assert SKIPPED_LISTED_MAX == 500  # the module's own bound is untouched outside this test


def test_selected_orders_are_all_decided_halted_or_not(trading) -> None:
    run_id = halted_run()
    halted = stale_order(run_id=run_id)
    fine = stale_order()
    result = sweep_run(now=CLOCK, actor="admin:ops", dry_run=True, order_ids=[halted.pk, fine.pk])
    assert {o.id: o.reason for o in result.orders} == {
        halted.pk: Reason.GUARD_HALTED,
        fine.pk: Reason.REPLACED,
    }
    assert result.omitted == {}


def test_the_dry_run_and_the_real_run_plan_the_same_orders(trading) -> None:
    run_id = halted_run()
    for i in range(4):
        stale_order(age=900 - i, run_id=run_id)
    for i in range(3):
        stale_order(age=100 - i)
    dry = sweep_run(now=CLOCK, actor="test", dry_run=True, limit=2)
    real = sweep_run(now=CLOCK, actor="test", limit=2)
    assert dry.counts() == real.counts()
    assert [(o.id, o.reason) for o in dry.orders] == [(o.id, o.reason) for o in real.orders]


def test_an_idle_plan_probes_nothing(trading) -> None:
    run_id = halted_run()
    stale_order(run_id=run_id)
    plan = sweep_plan(config=AutoRecoveryConfig(), now=CLOCK, limit=10, order_ids=None)
    assert plan.decided == [] and plan.report["ib"]["probed"] is False
    # Unprobed is not "down": the held-back order keeps its own reason.
    assert [str(o.reason) for o in plan.held_back] == ["guard_halted"]


def test_the_commands_text_says_what_it_did_not_list(trading, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("recovery.services.plan.HELD_BACK_COUNT_MAX", 25)
    run_id = halted_run()
    for i in range(30):
        stale_order(age=900 - i, run_id=run_id)
    stale_order(age=100)
    out = io.StringIO()
    call_command("auto_recover", "--verbosity", "2", now=CLOCK, stdout=out)
    text = out.getvalue()
    assert "also skipped, not listed: guard_halted 5+" in text  # 25 counted, 20 of them listed
    assert "broker evidence: 1 folder(s), 0 event file(s), 0 KiB read" in text
    assert "scanned 26  cancelled 1  replaced 1  skipped 25  failed 0" in text


def test_limit_does_not_walk_past_the_circuit_breaker(trading) -> None:
    """100 stuck orders, at most 20 re-placed per sweep: `--limit 20` five times re-places none.

    The breaker weighs the whole stale backlog, not the `limit` orders a run would act on.
    """
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 20})
    for i in range(100):
        stale_order(age=3600 - i)
    for _ in range(5):
        result = sweep_run(now=CLOCK, actor="test", limit=20)
        assert result.circuit_open and (result.cancelled, result.replaced) == (0, 0)
        assert result.would_replace == 21  # counting stops once the cap is passed
    assert TradeOrder.objects.filter(status="NEW").count() == 100


def test_a_backlog_within_the_cap_is_worked_off_limit_by_limit(trading) -> None:
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 20})
    for i in range(20):
        stale_order(age=3600 - i)
    done = [sweep_run(now=CLOCK, actor="test", limit=8).replaced for _ in range(3)]
    assert done == [8, 8, 4]
    assert TradeOrder.objects.filter(status="NEW", client_order_id__endswith="-r1").count() == 20


def test_orders_of_a_run_still_running_never_hold_healthy_ones_back(trading) -> None:
    """Rule 3b in SQL: a running run's orders are left out of the query, counted and listed."""
    running = factories.TradeRunFactory(project_id=7, status="running").pk
    owned = [stale_order(age=3600 - i, run_id=running) for i in range(30)]
    healthy = [stale_order(age=120 - i) for i in range(3)]
    result = sweep_run(now=CLOCK, actor="test", limit=5)
    assert {o.id for o in result.orders if o.decision == "replace"} == {o.pk for o in healthy}
    assert result.reasons() == {"owned_by_backend": 30, "replaced": 3}
    listed = [o for o in result.orders if o.reason is Reason.OWNED_BY_BACKEND]
    assert len(listed) == HELD_BACK_LISTED_MAX and listed[0].id == owned[0].pk
    assert (
        listed[0].detail
        == "left out of this run's candidate query: its run has not ended: the run may still send it"
    )
    assert TradeOrder.objects.filter(pk__in=[o.pk for o in owned], status="NEW").count() == 30


def replacements_written(count: int, *, ago: dt.timedelta) -> None:
    """Replacement audit rows as earlier sweeps (any host, the admin, the API) left them."""
    for _ in range(count):
        factories.AuditLogFactory(action=ACTION_REPLACE, actor="auto_recover", created_at=CLOCK - ago)


@pytest.mark.parametrize(
    ("ago", "opens"), [(dt.timedelta(minutes=10), True), (dt.timedelta(minutes=61), False)]
)
def test_the_rolling_hour_counts_every_replacement_written_in_the_last_60_minutes(
    trading, ago: dt.timedelta, opens: bool
) -> None:
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_hour": 60})
    replacements_written(50, ago=ago)
    for i in range(20):
        stale_order(age=3600 - i)
    result = sweep_run(now=CLOCK, actor="test", limit=200)
    assert result.circuit_open is opens
    assert result.replaced == (0 if opens else 20)
    assert result.replaced_last_hour == (50 if opens else 0)


def test_the_admins_confirmation_passes_the_per_sweep_cap_but_never_the_hour(trading) -> None:
    TradeSettings.objects.update(
        auto_recovery={"max_replacements_per_sweep": 5, "max_replacements_per_hour": 20}
    )
    orders = [stale_order(age=3600 - i).pk for i in range(8)]
    confirmed = sweep_run(now=CLOCK, actor="admin:ops", order_ids=orders, confirmed_replacements=8)
    assert (confirmed.breaker_overridden, confirmed.replaced) == (True, 8)
    more = [stale_order(age=3000 - i).pk for i in range(13)]
    refused = sweep_run(now=CLOCK, actor="admin:ops", order_ids=more, confirmed_replacements=13)
    assert refused.circuit_open and refused.replaced == 0 and refused.replaced_last_hour == 8


def test_the_rolling_hour_reads_only_the_newest_replace_rows(trading) -> None:  # noqa: ANN001
    """Past the cap the exact figure changes nothing, so only the newest `at_most` rows are read:
    70 replacements from two hours ago and 5 from the last hour count 5; 70 in the hour, 60."""

    def replaced(count: int, at: dt.datetime) -> None:
        AuditLog.objects.bulk_create(
            [
                AuditLog(
                    actor="t",
                    action=ACTION_REPLACE,
                    resource_type="trade_order",
                    resource_id=i,
                    detail={},
                    created_at=at,
                )
                for i in range(count)
            ]  # fmt: skip
        )

    replaced(70, CLOCK - dt.timedelta(hours=2))
    replaced(5, CLOCK - dt.timedelta(minutes=10))
    assert selectors.replacements_last_hour(now=CLOCK, at_most=60) == 5
    replaced(70, CLOCK - dt.timedelta(minutes=5))
    assert selectors.replacements_last_hour(now=CLOCK, at_most=60) == 60
