"""Reads of the sweep: candidates, the locked re-read, settings, projects and the gates.

Runs on SQLite and on MariaDB: the candidate filter's JSON and NULL cases are exactly
where the two engines part ways, so every case runs on both.
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from django.db import transaction
from django.db.models import JSONField, Value

from recovery import selectors
from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
from recovery.gates.ib import DETAIL_MOCK
from recovery.sweep.config import (
    WHOLE_COLUMN,
    WHY_BOOL,
    WHY_FLOAT,
    WHY_INT,
    WHY_NO_ROW,
    WHY_NOT_OBJECT,
    WHY_NULL,
    AutoRecoveryConfig,
    SettingsWarning,
)
from recovery.sweep.decisions import NotCandidate, Reason, candidate_problem, decide
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order

TIMEOUT = 45
CONFIG = AutoRecoveryConfig(new_timeout_seconds=TIMEOUT)
LOCALHOST = "127.0.0.1"
# 21:00 in New York on Tuesday 2026-11-24, already Wednesday in UTC: "today" must be
# the New York date, not the UTC one.
EVENING = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
NY_TODAY = dt.date(2026, 11, 24)


def candidate_ids(
    *, limit: int = 100, order_ids: list[int] | None = None, now: dt.datetime = CLOCK
) -> list[int]:
    orders = selectors.stale_order_list(now=now, timeout_seconds=TIMEOUT, limit=limit, order_ids=order_ids)
    return [o.pk for o in orders]


def store_json_null(order: TradeOrder) -> None:
    """params = JSON null (not SQL NULL): the ORM writes None as SQL NULL otherwise."""
    TradeOrder.objects.filter(pk=order.pk).update(params=Value(None, JSONField()))


@pytest.fixture
def closed_port() -> int:
    # A port that was free a moment ago and has nothing listening on it now.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


# --- stale_order_list: the candidate filter -----------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["SUBMITTED", "PARTIAL", "FILLED", "CANCELED", "REJECTED", "SKIPPED"])
def test_only_new_orders_are_candidates(status: str) -> None:
    new = stale_order()
    stale_order(status=status)
    assert candidate_ids() == [new.pk]


@pytest.mark.django_db
def test_an_order_exactly_timeout_old_is_a_candidate_one_second_younger_is_not() -> None:
    at_timeout = stale_order(age=TIMEOUT)
    stale_order(age=TIMEOUT - 1)
    assert candidate_ids() == [at_timeout.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"ib_order_id": 7001}, id="ib_order_id"),
        pytest.param({"ib_perm_id": 9001}, id="ib_perm_id"),
        pytest.param({"ib_order_id": 0}, id="ib_order_id-zero"),
        pytest.param({"filled_quantity": 5.0}, id="filled"),
        pytest.param({"filled_quantity": 0.0001}, id="filled-a-fraction"),
    ],
)
def test_acknowledged_or_filled_orders_are_not_candidates(fields: dict) -> None:
    plain = stale_order()
    stale_order(**fields)
    assert candidate_ids() == [plain.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"intent_only": True}, id="true"),
        pytest.param({"intent_only": True, "project_id": 7, "mode": "paper"}, id="true-among-others"),
    ],
)
def test_intent_only_true_is_not_a_candidate(params: dict) -> None:
    stale_order(params=params)
    assert candidate_ids() == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"intent_only": False}, id="intent_only-false"),
        pytest.param({}, id="intent_only-absent"),
        pytest.param({"project_id": 7}, id="other-keys-only"),
        pytest.param(None, id="sql-null"),
        pytest.param([1, 2], id="list"),
        pytest.param(["intent_only", True], id="list-naming-the-key"),
        pytest.param("intent_only", id="string"),
        pytest.param({"intent_only": None}, id="intent_only-json-null"),
        pytest.param({"nested": {"intent_only": True}}, id="nested-key"),
    ],
)
def test_params_that_do_not_say_intent_only_true_keep_the_order_a_candidate(params: object) -> None:
    order = stale_order(params=params)
    order.refresh_from_db()
    assert order.params == params  # stored as written: SQL NULL, a list, a string
    assert candidate_ids() == [order.pk]


@pytest.mark.django_db
def test_params_holding_json_null_keep_the_order_a_candidate() -> None:
    order = stale_order()
    store_json_null(order)
    assert candidate_ids() == [order.pk]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"intent_only": True},
        {"intent_only": False},
        {"intent_only": None},
        {"intent_only": "true"},
        {"intent_only": "false"},
        {"intent_only": 1},
        {"intent_only": 0},
        {},
        None,
        [1],
        "text",
    ],
    ids=repr,
)
def test_the_sql_filter_and_candidate_problem_agree_on_intent_only(params: object) -> None:
    """The admin explains a non-candidate with candidate_problem: both must read params alike."""
    order = stale_order(params=params)
    in_sql = candidate_ids() == [order.pk]
    in_python = candidate_problem(
        selectors.order_snapshot(order, runs={}), settings=AutoRecoveryConfig(), now=CLOCK
    )
    assert in_sql == (in_python is None), f"SQL candidate={in_sql}, candidate_problem={in_python}"


@pytest.mark.django_db
def test_candidates_come_oldest_first_ties_by_id() -> None:
    newer = stale_order(age=100)
    tie_low = stale_order(age=300)
    oldest = stale_order(age=500)
    tie_high = stale_order(age=300)
    assert tie_low.pk < tie_high.pk
    assert candidate_ids() == [oldest.pk, tie_low.pk, tie_high.pk, newer.pk]


@pytest.mark.django_db
def test_limit_keeps_the_oldest() -> None:
    orders = [stale_order(age=100 + i) for i in range(5)]
    assert candidate_ids(limit=2) == [orders[4].pk, orders[3].pk]
    assert candidate_ids(limit=1) == [orders[4].pk]


@pytest.mark.django_db
def test_order_ids_restrict_the_candidates() -> None:
    wanted = stale_order(age=100)
    other = stale_order(age=200)
    acknowledged = stale_order(ib_order_id=1)
    missing = other.pk + acknowledged.pk + 1000
    assert candidate_ids(order_ids=[wanted.pk, acknowledged.pk, missing]) == [wanted.pk]
    assert candidate_ids(order_ids=[]) == []
    assert candidate_ids(order_ids=[other.pk, wanted.pk]) == [other.pk, wanted.pk]


# --- order_locked_get ---------------------------------------------------------------


def locked(order_id: int) -> TradeOrder | None:
    with transaction.atomic(using=trading_alias()):
        return selectors.order_locked_get(order_id=order_id)


@pytest.mark.django_db
def test_order_locked_get_returns_the_row_as_it_is_now() -> None:
    order = stale_order()
    TradeOrder.objects.filter(pk=order.pk).update(ib_order_id=7001, status="SUBMITTED")
    found = locked(order.pk)
    assert found is not None
    assert (found.pk, found.client_order_id) == (order.pk, order.client_order_id)
    assert (found.status, found.ib_order_id) == ("SUBMITTED", 7001)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "why"),
    [
        pytest.param({"status": "SUBMITTED"}, NotCandidate.NOT_NEW, id="submitted"),
        pytest.param({"status": "CANCELED"}, NotCandidate.NOT_NEW, id="cancelled"),
        pytest.param({"ib_order_id": 7001}, NotCandidate.ACKNOWLEDGED, id="acknowledged"),
        pytest.param({"ib_perm_id": 9001}, NotCandidate.ACKNOWLEDGED, id="perm-id"),
        pytest.param({"filled_quantity": 1.0}, NotCandidate.FILLED, id="filled"),
        pytest.param({"params": {"intent_only": True}}, NotCandidate.INTENT_ONLY, id="intent-only"),
        pytest.param(
            {"created_at": CLOCK - dt.timedelta(seconds=TIMEOUT - 1)}, NotCandidate.TOO_YOUNG, id="too-young"
        ),
    ],
)
def test_the_locked_row_is_rechecked_against_the_candidate_filter(change: dict, why: NotCandidate) -> None:
    """The sweep re-checks the locked row in Python; it must agree with the SQL filter."""
    order = stale_order()
    assert (
        candidate_problem(selectors.order_snapshot(locked(order.pk), runs={}), settings=CONFIG, now=CLOCK)
        is None
    )
    TradeOrder.objects.filter(pk=order.pk).update(**change)
    assert selectors.stale_order_list(now=CLOCK, timeout_seconds=TIMEOUT, limit=10) == []
    snapshot = selectors.order_snapshot(locked(order.pk), runs={})
    assert candidate_problem(snapshot, settings=CONFIG, now=CLOCK) is why


@pytest.mark.django_db
def test_order_locked_get_of_an_unknown_id_is_nothing() -> None:
    order = stale_order()
    assert locked(order.pk + 1000) is None


# --- settings_in_force_get ----------------------------------------------------------


@pytest.mark.django_db
def test_the_settings_row_with_the_highest_id_wins() -> None:
    older_stamp = CLOCK - dt.timedelta(days=30)
    factories.TradeSettingsFactory(auto_recovery={"new_timeout_seconds": 60}, created_at=CLOCK)
    newest = factories.TradeSettingsFactory(auto_recovery={"new_timeout_seconds": 90}, created_at=older_stamp)
    in_force = selectors.settings_in_force_get()
    assert in_force.row_id == newest.pk
    assert in_force.config.new_timeout_seconds == 90
    assert in_force.warnings == []


@pytest.mark.django_db
def test_no_settings_row_means_defaults_with_one_warning() -> None:
    in_force = selectors.settings_in_force_get()
    assert in_force.config == AutoRecoveryConfig()
    assert in_force.row_id is None
    assert in_force.warnings == [SettingsWarning(WHOLE_COLUMN, None, WHY_NO_ROW)]


@pytest.mark.django_db
def test_a_null_auto_recovery_column_means_defaults() -> None:
    factories.TradeSettingsFactory(auto_recovery={"new_timeout_seconds": 90, "enabled": False})
    newest = factories.TradeSettingsFactory(auto_recovery=None)
    in_force = selectors.settings_in_force_get()
    assert in_force.row_id == newest.pk
    assert in_force.config == AutoRecoveryConfig()
    assert in_force.warnings == [SettingsWarning(WHOLE_COLUMN, None, WHY_NULL)]


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [["enabled", False], "enabled=false", 45], ids=repr)
def test_a_column_holding_no_json_object_means_defaults_reported_once(raw: object) -> None:
    factories.TradeSettingsFactory(auto_recovery=raw)
    in_force = selectors.settings_in_force_get()
    assert in_force.config == AutoRecoveryConfig()
    assert in_force.warnings == [SettingsWarning(WHOLE_COLUMN, raw, WHY_NOT_OBJECT)]


@pytest.mark.django_db
def test_invalid_settings_are_reported_and_fall_back_to_their_defaults() -> None:
    factories.TradeSettingsFactory(
        auto_recovery={
            "enabled": 1,
            "new_timeout_seconds": 45.5,
            "max_auto_retries": 11,
            "max_price_deviation_pct": True,
            "max_replacements_per_sweep": 50,  # valid: applies
            "unfilled_timeout_seconds": 5,  # the backend's own key: ignored, not reported
        }
    )
    in_force = selectors.settings_in_force_get()
    defaults = AutoRecoveryConfig()
    assert in_force.config == AutoRecoveryConfig(max_replacements_per_sweep=50)
    assert in_force.config.new_timeout_seconds == defaults.new_timeout_seconds
    reported = {w.key: (w.value, w.reason) for w in in_force.warnings}
    assert reported == {
        "enabled": (1, WHY_BOOL),
        "new_timeout_seconds": (45.5, WHY_INT),
        "max_auto_retries": (11, "must be between 0 and 10"),
        "max_price_deviation_pct": (True, WHY_FLOAT),
    }


# --- run_projects_get / order_snapshot ------------------------------------------------


@pytest.mark.django_db
def test_run_projects_get_maps_run_ids_to_project_and_mode() -> None:
    paper = factories.TradeRunFactory(project_id=7, mode="paper")
    live = factories.TradeRunFactory(project_id=8, mode="live")
    missing = paper.pk + live.pk + 1000
    runs = selectors.run_projects_get([paper.pk, None, live.pk, paper.pk, missing])
    assert runs == {paper.pk: (7, "paper"), live.pk: (8, "live")}
    assert selectors.run_projects_get([None, None]) == {}
    assert selectors.run_projects_get([]) == {}


def snapshot_of(order: TradeOrder):  # noqa: ANN201
    order.refresh_from_db()
    runs = selectors.run_projects_get([order.run_id])
    return selectors.order_snapshot(order, runs=runs)


@pytest.mark.django_db
def test_the_run_decides_project_and_mode_over_params() -> None:
    run = factories.TradeRunFactory(project_id=7, mode="live")
    order = stale_order(run_id=run.pk, params={"project_id": 99, "mode": "paper"})
    snapshot = snapshot_of(order)
    assert (snapshot.project_id, snapshot.mode) == (7, "live")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({"project_id": 7, "mode": "live"}, (7, "live"), id="project-and-mode"),
        pytest.param({"project_id": 7}, (7, "paper"), id="mode-defaults-to-paper"),
        pytest.param({"mode": "live"}, (None, "live"), id="no-project"),
        pytest.param({}, (None, "paper"), id="nothing"),
    ],
)
def test_without_a_run_params_give_project_and_mode(params: dict, expected: tuple) -> None:
    snapshot = snapshot_of(stale_order(params=params))
    assert (snapshot.project_id, snapshot.mode) == expected


@pytest.mark.django_db
def test_a_run_id_without_a_run_row_falls_back_to_params() -> None:
    run = factories.TradeRunFactory(project_id=7, mode="paper")
    order = stale_order(run_id=run.pk + 1000, params={"project_id": 8, "mode": "live"})
    snapshot = snapshot_of(order)
    assert (snapshot.project_id, snapshot.mode) == (8, "live")


@pytest.mark.django_db
@pytest.mark.parametrize("params", [None, [1, 2], "project_id", 7], ids=repr)
def test_params_that_are_not_an_object_read_as_empty(params: object) -> None:
    snapshot = snapshot_of(stale_order(params=params))
    assert snapshot.params == {}
    assert (snapshot.project_id, snapshot.mode) == (None, "paper")


@pytest.mark.django_db
def test_params_holding_json_null_read_as_empty() -> None:
    order = stale_order()
    store_json_null(order)
    snapshot = snapshot_of(order)
    assert snapshot.params == {}


@pytest.mark.django_db
def test_order_snapshot_carries_the_row() -> None:
    order = stale_order(
        order_type="LMT", limit_price=101.5, quantity=3.0, side="SELL", params={"submit_command": {"x": 1}}
    )
    snapshot = snapshot_of(order)
    assert (snapshot.id, snapshot.client_order_id, snapshot.status) == (
        order.pk,
        order.client_order_id,
        "NEW",
    )
    assert (snapshot.side, snapshot.quantity, snapshot.order_type, snapshot.limit_price) == (
        "SELL",
        3.0,
        "LMT",
        101.5,
    )
    assert snapshot.created_at == CLOCK - dt.timedelta(seconds=120)
    assert snapshot.params == {"submit_command": {"x": 1}}


# --- gates_get ----------------------------------------------------------------------


def snapshots(*params: dict, clock: dt.datetime = CLOCK) -> list:
    return [selectors.order_snapshot(stale_order(params=p, clock=clock), runs={}) for p in params]


def gates(orders: list, *, now: dt.datetime = CLOCK) -> selectors.Gates:
    return selectors.gates_get(config=AutoRecoveryConfig(), now=now, orders=orders)


@pytest.mark.django_db
def test_ib_is_not_probed_without_orders(bridge, closed_port: int) -> None:  # noqa: ANN001
    factories.IbSettingsFactory(api_mode="ib", port=closed_port)
    report = gates([]).report["ib"]
    assert report["probed"] is False
    assert "not probed" in report["detail"]


@pytest.mark.django_db
def test_mock_api_mode_counts_as_reachable(bridge, closed_port: int) -> None:  # noqa: ANN001
    factories.IbSettingsFactory(api_mode="mock", port=closed_port)
    result = gates(snapshots({}))
    assert result.state.ib_reachable is True
    assert result.report["ib"]["probed"] is True
    assert result.report["ib"]["detail"] == DETAIL_MOCK


@pytest.mark.django_db
def test_a_closed_port_is_unreachable(bridge, closed_port: int) -> None:  # noqa: ANN001
    factories.IbSettingsFactory(api_mode="ib", host=LOCALHOST, port=closed_port)
    result = gates(snapshots({}))
    assert result.state.ib_reachable is False
    assert result.report["ib"]["probed"] is True
    assert (result.report["ib"]["host"], result.report["ib"]["port"]) == (LOCALHOST, closed_port)


@pytest.mark.django_db
def test_the_ib_settings_row_with_the_lowest_id_is_in_force(bridge, closed_port: int) -> None:  # noqa: ANN001
    factories.IbSettingsFactory(api_mode="ib", host=LOCALHOST, port=closed_port)
    factories.IbSettingsFactory(api_mode="mock", host="10.0.0.9", port=4002)
    result = gates(snapshots({}))
    assert result.state.ib_reachable is False
    assert result.report["ib"]["api_mode"] == "ib"
    assert result.report["ib"]["port"] == closed_port


@pytest.mark.django_db
def test_the_lowest_id_wins_the_other_way_round_too(bridge, closed_port: int) -> None:  # noqa: ANN001
    factories.IbSettingsFactory(api_mode="mock", host="10.0.0.9", port=4002)
    factories.IbSettingsFactory(api_mode="ib", host=LOCALHOST, port=closed_port)
    result = gates(snapshots({}))
    assert result.state.ib_reachable is True
    assert (result.report["ib"]["host"], result.report["ib"]["port"]) == ("10.0.0.9", 4002)


@pytest.mark.django_db
def test_without_ib_settings_the_environment_fallback_is_probed(
    bridge,  # noqa: ANN001
    settings,  # noqa: ANN001
    closed_port: int,
) -> None:
    settings.IB_HOST = LOCALHOST
    settings.IB_PORT = closed_port
    result = gates(snapshots({}))
    assert result.state.ib_reachable is False
    report = result.report["ib"]
    assert (report["probed"], report["host"], report["port"], report["api_mode"]) == (
        True,
        LOCALHOST,
        closed_port,
        "ib",
    )


@pytest.mark.django_db
def test_halted_pairs_are_those_of_today_in_new_york_and_the_same_mode(bridge) -> None:  # noqa: ANN001
    factories.IbSettingsFactory()
    factories.TradeGuardStateFactory(project_id=7, mode="paper", trade_date=NY_TODAY, status="halted")
    # project 8: halted only yesterday, and on the UTC date (already tomorrow in New York terms)
    factories.TradeGuardStateFactory(
        project_id=8, mode="paper", trade_date=NY_TODAY - dt.timedelta(days=1), status="halted"
    )
    factories.TradeGuardStateFactory(project_id=8, mode="paper", trade_date=EVENING.date(), status="halted")
    # project 9: halted today, but for live, while its orders are paper
    factories.TradeGuardStateFactory(project_id=9, mode="live", trade_date=NY_TODAY, status="halted")
    # project 10: today's paper row is active
    factories.TradeGuardStateFactory(project_id=10, mode="paper", trade_date=NY_TODAY, status="active")
    orders = snapshots(
        {"project_id": 7},
        {"project_id": 8},
        {"project_id": 9},
        {"project_id": 10},
        {"project_id": 11},
        {},
        clock=EVENING,
    )
    result = gates(orders, now=EVENING)
    # Every pair halted today (the sweep leaves their orders out in SQL); project 9 is halted
    # for live only, so its paper order is not.
    assert result.state.halted == frozenset({(7, "paper"), (9, "live")})
    assert result.report["halted"] == [{"project_id": 7, "mode": "paper"}, {"project_id": 9, "mode": "live"}]
    decisions = {
        o.project_id: decide(o, gates=result.state, settings=AutoRecoveryConfig(), now=EVENING)
        for o in orders
    }
    assert {p for p, d in decisions.items() if d.reason is Reason.GUARD_HALTED} == {7}


@pytest.mark.django_db
def test_a_live_order_of_a_project_halted_for_live_is_halted(bridge) -> None:  # noqa: ANN001
    factories.IbSettingsFactory()
    factories.TradeGuardStateFactory(project_id=9, mode="live", trade_date=NY_TODAY, status="halted")
    run = factories.TradeRunFactory(project_id=9, mode="live")
    order = stale_order(run_id=run.pk)
    snapshot = selectors.order_snapshot(order, runs=selectors.run_projects_get([run.pk]))
    assert gates([snapshot]).state.halted == frozenset({(9, "live")})
