"""An order's decision history in the admin: its page, its list, and the links to it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recovery.admin.history import history_url, order_history_html, sweep_history_url
from recovery.db.audit import ACTION_CANCEL, ACTION_SWEEP
from recovery.db.history import DecisionEntry, decision_history_write
from recovery.db.models import AuditLog, OrderDecision
from recovery.gates.guard import trade_date_for
from recovery.services import sweep_run
from recovery.tests import factories
from recovery.tests.conftest import is_mysql
from recovery.tests.test_admin_orders import action_post, stale, user_with

pytestmark = pytest.mark.django_db

HISTORY = "admin:recovery_orderdecision_changelist"


@pytest.fixture
def setup(bridge) -> None:  # noqa: ANN001
    factories.TradeSettingsFactory(auto_recovery={"max_auto_retries": 0})  # cancel only, whatever the hour
    factories.IbSettingsFactory()


@pytest.fixture
def viewer(client: Client, django_user_model, setup) -> Client:  # noqa: ANN001
    client.force_login(user_with(django_user_model, "viewer", "view_tradeorder", "view_auditlog"))
    return client


@pytest.fixture
def ops(client: Client, django_user_model, setup) -> Client:  # noqa: ANN001
    user = user_with(django_user_model, "ops", "view_tradeorder", "view_auditlog", "run_auto_recovery")
    client.force_login(user)
    return client


def halted_order():  # noqa: ANN201
    now = timezone.now()
    factories.TradeGuardStateFactory(project_id=7, status="halted", trade_date=trade_date_for(now))
    return stale(params={"project_id": 7})


def test_a_halted_orders_page_shows_what_the_sweeps_did_in_words(viewer: Client) -> None:
    order = halted_order()
    sweep_run(now=timezone.now(), actor="auto_recover")
    sweep_run(now=timezone.now(), actor="auto_recover")

    page = viewer.get(reverse("admin:recovery_tradeorder_change", args=[order.pk]))

    body = page.content.decode()
    assert page.status_code == 200
    assert "Left alone: its project is halted by the risk guard today" in body
    assert '<code class="reason-code">guard_halted</code>' in body
    assert '<td data-label="sweeps">2</td>' in body
    assert history_url(order.pk).replace("&", "&amp;") in body  # one click to the whole list


def test_the_history_list_of_one_order_links_each_sweep_to_its_audit_row(viewer: Client) -> None:
    order = stale()
    result = sweep_run(now=timezone.now(), actor="auto_recover")
    sweep_row = AuditLog.objects.get(action=ACTION_SWEEP)

    page = viewer.get(history_url(order.pk))

    body = page.content.decode()
    assert page.status_code == 200
    assert "Cancel only: retries used up" in body
    assert reverse("admin:recovery_auditlog_change", args=[sweep_row.pk]) in body
    assert f"sweep {result.sweep_id[:8]}" in body
    assert list(page.context["cl"].result_list) == list(OrderDecision.objects.filter(order_id=order.pk))


def test_a_sweep_without_an_audit_row_links_to_its_decisions_and_that_list_shows_them(viewer: Client) -> None:
    first, second = halted_order(), stale(params={"project_id": 7})
    other = stale()
    decision_history_write(
        [DecisionEntry(999_999, "not-this-sweep", "skip", "open_at_broker")],
        now=timezone.now(),
        sweep_id="another",
        actor="auto_recover",
        audit_id=None,
    )
    factories.TradeSettingsFactory(auto_recovery={"enabled": False})
    result = sweep_run(now=timezone.now(), actor="auto_recover")
    assert not AuditLog.objects.exists()  # only skipped: no audit row

    page = viewer.get(sweep_history_url(result.sweep_id))

    shown = {row.order_id for row in page.context["cl"].result_list}
    assert shown == {first.pk, second.pk, other.pk}  # every order it left alone, no other sweep's
    assert sweep_history_url(result.sweep_id).split("?")[1] in page.content.decode()


def test_every_place_that_shows_an_orders_fate_links_to_its_history(ops: Client) -> None:
    order = stale()
    listing = ops.get(reverse("admin:recovery_tradeorder_changelist")).content.decode()
    assert history_url(order.pk) in listing

    assert action_post(ops, [order.pk], confirm="yes").status_code == 302
    [message] = list(ops.get(reverse("admin:recovery_tradeorder_changelist")).context["messages"])
    result_sweep = OrderDecision.objects.get(order_id=order.pk).last_sweep_id
    assert sweep_history_url(result_sweep) in str(message)  # the action's result

    cancel_row = AuditLog.objects.get(action=ACTION_CANCEL)
    entry = ops.get(reverse("admin:recovery_auditlog_change", args=[cancel_row.pk])).content.decode()
    assert history_url(order.pk) in entry
    sweep_row = AuditLog.objects.get(action=ACTION_SWEEP)
    entry = ops.get(reverse("admin:recovery_auditlog_change", args=[sweep_row.pk])).content.decode()
    assert history_url(order.pk) in entry

    replaced_by = stale(
        client_order_id=f"{order.client_order_id}-r1",
        params={"auto_recovery": {"attempts": 1, "origin_order_id": order.pk}},
    )
    chain = ops.get(reverse("admin:recovery_tradeorder_change", args=[replaced_by.pk])).content.decode()
    assert history_url(order.pk).replace("&", "&amp;") in chain  # the chain's origin


def test_a_bounded_sweep_row_says_where_the_other_orders_are(viewer: Client) -> None:
    orders = [
        {"id": i, "client_order_id": f"c{i}", "decision": "skip", "reason": "guard_halted"} for i in range(3)
    ]
    row = factories.AuditLogFactory(
        actor="auto_recover",
        action=ACTION_SWEEP,
        resource_type="auto_recovery",
        resource_id=None,
        detail={"sweep_id": "abc123", "orders": orders, "orders_total": 4000, "orders_omitted": 3997},
    )
    body = viewer.get(reverse("admin:recovery_auditlog_change", args=[row.pk])).content.decode()
    assert "3 of 4000 orders are listed here" in body
    assert sweep_history_url("abc123") in body


def test_the_sweeps_audit_filter_finds_the_cancels_a_bounded_row_left_out(viewer: Client) -> None:
    order = stale()
    sweep_run(now=timezone.now(), actor="auto_recover")
    sweep_row = AuditLog.objects.get(action=ACTION_SWEEP)
    sweep_row.detail = {**sweep_row.detail, "orders": [], "orders_total": 1, "orders_omitted": 1}
    sweep_row.save()

    page = viewer.get(reverse("admin:recovery_auditlog_changelist") + f"?sweep={sweep_row.pk}")

    actions = {(e.action, e.resource_id) for e in page.context["cl"].result_list}
    assert (ACTION_CANCEL, order.pk) in actions


def test_the_order_pages_history_is_one_query_however_long(viewer: Client) -> None:
    order = stale()
    start = timezone.now() - dt.timedelta(days=1)
    for i, reason in enumerate(["guard_halted", "open_at_broker", "seen_by_broker"] * 5):
        entry = DecisionEntry(order.pk, order.client_order_id, f"skip{i}", reason)
        decision_history_write(
            [entry], now=start + dt.timedelta(minutes=i), sweep_id=f"s{i}", actor="x", audit_id=None
        )
    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as queries:
        html = order_history_html(order.pk)
    assert len(queries.captured_queries) == 1
    assert html.count("<tr>") == 11  # the header and the newest ten
    assert "All of them" in html


@pytest.mark.mysql
def test_the_order_pages_history_reads_the_order_index(viewer: Client) -> None:
    if not is_mysql():
        pytest.skip("EXPLAIN as MySQL says it")
    query = OrderDecision.objects.filter(order_id=5).order_by("-last_at", "-id")[:11]
    plan = query.explain()
    assert "ix_order_decision_order" in plan or "uq_order_decision_pair" in plan
    assert "filesort" not in plan.lower()
