"""The audit trail admin: read only for everyone, filters and searches that use indexes."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recovery.admin.audit_detail import audit_summary
from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP
from recovery.db.models import AuditLog, TradeOrder
from recovery.db.routers import trading_alias
from recovery.services import sweep_run
from recovery.tests import factories

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:recovery_auditlog_changelist"


@pytest.fixture
def swept(bridge) -> dict:  # noqa: ANN001
    """A sweep by an admin over two stale orders, and some older unrelated rows."""
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    created = timezone.now() - dt.timedelta(minutes=5)
    orders = [
        factories.TradeOrderFactory(client_order_id=f"aud-{i}", created_at=created, updated_at=created)
        for i in range(2)
    ]
    factories.AuditLogFactory(actor="system", action="trade_order.create", resource_id=999)
    old = factories.AuditLogFactory(actor="system", action="trade_order.create", resource_id=998)
    AuditLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=40))
    result = sweep_run(now=timezone.now(), actor="admin:ops", order_ids=[o.pk for o in orders])
    return {"orders": orders, "result": result}


def ids(page) -> set[int]:  # noqa: ANN001
    return {entry.pk for entry in page.context["cl"].result_list}


def test_read_only_for_superusers_too(admin_client: Client, swept: dict) -> None:
    entry = AuditLog.objects.get(action=ACTION_SWEEP)
    changelist = admin_client.get(reverse(CHANGELIST))
    assert changelist.status_code == 200
    assert b"action-select" not in changelist.content  # no delete_selected, no actions at all
    assert reverse("admin:recovery_auditlog_add").encode() not in changelist.content
    view = admin_client.get(reverse("admin:recovery_auditlog_change", args=[entry.pk]))
    assert view.status_code == 200 and b'name="_save"' not in view.content
    assert b"Delete" not in view.content
    assert admin_client.get(reverse("admin:recovery_auditlog_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:recovery_auditlog_change", args=[entry.pk]), {"actor": "x"}
        ).status_code
        == 403
    )
    assert (
        admin_client.post(
            reverse("admin:recovery_auditlog_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditLog.objects.get(pk=entry.pk).actor == "admin:ops"


def test_changelist_columns_link_orders_and_summarise(admin_client: Client, swept: dict) -> None:
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    order = swept["orders"][0]
    assert reverse("admin:recovery_tradeorder_change", args=[order.pk]) in body
    assert "scanned 2, cancelled 2, replaced 2, skipped 0, failed 0" in body
    replacement = TradeOrder.objects.get(client_order_id="aud-0-r1")
    # Both ends of a recovery, as links, on the cancel row and on the replacement row.
    order_url = reverse("admin:recovery_tradeorder_change", args=[order.pk])
    replacement_url = reverse("admin:recovery_tradeorder_change", args=[replacement.pk])
    assert (
        f'<a href="{order_url}">#{order.pk} aud-0</a> cancelled, replaced by <a href="{replacement_url}">'
        in body
    )
    assert (
        f'<a href="{replacement_url}">#{replacement.pk} aud-0-r1</a> replaces <a href="{order_url}">' in body
    )
    assert "audit log entries" in body and "audit log</" not in body
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", body)  # seconds in times


def test_sweep_detail_shows_its_decisions_first_and_the_json_folded(
    admin_client: Client, swept: dict
) -> None:
    entry = AuditLog.objects.get(action=ACTION_SWEEP)
    body = admin_client.get(reverse("admin:recovery_auditlog_change", args=[entry.pk])).content.decode()
    assert 'class="audit-detail"' in body and "&quot;sweep_id&quot;: &quot;" in body
    assert body.index('class="sweep-decisions') < body.index('<details class="folded raw-json">')
    assert "aud-0-r1" in body and "aud-1-r1" in body
    assert "Cancel and re-place: nothing stops it" in body


def test_an_entry_is_titled_in_words_with_one_time_format(admin_client: Client, swept: dict) -> None:
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    AuditLog.objects.filter(pk=sweep.pk).update(created_at=dt.datetime(2026, 12, 7, 14, 5, 30, tzinfo=dt.UTC))
    body = admin_client.get(reverse("admin:recovery_auditlog_change", args=[sweep.pk])).content.decode()
    assert "Sweep by admin:ops, 2026-12-07 14:05:30 UTC" in body  # the title and the breadcrumbs
    assert "auto_recovery.sweep auto_recovery" not in body
    cancel = AuditLog.objects.filter(action=ACTION_CANCEL).first()
    assert str(cancel).startswith(f"Cancel of order #{cancel.resource_id} by admin:ops, ")
    assert "View site" not in body  # the project serves no site: the link led to a 404


def test_cancel_and_replace_pages_link_every_id(admin_client: Client, swept: dict) -> None:
    order = swept["orders"][0]
    replacement = TradeOrder.objects.get(client_order_id="aud-0-r1")
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    cancel = AuditLog.objects.get(action=ACTION_CANCEL, resource_id=order.pk)
    replace = AuditLog.objects.get(action=ACTION_REPLACE, resource_id=replacement.pk)
    sweep_url = reverse("admin:recovery_auditlog_change", args=[sweep.pk])
    for entry, expected in (
        (cancel, [replacement.pk, order.pk]),
        (replace, [replacement.pk, order.pk]),
    ):
        body = admin_client.get(reverse("admin:recovery_auditlog_change", args=[entry.pk])).content.decode()
        for order_id in expected:
            assert reverse("admin:recovery_tradeorder_change", args=[order_id]) in body
        assert sweep_url in body
    body = admin_client.get(reverse("admin:recovery_auditlog_change", args=[replace.pk])).content.decode()
    assert reverse("admin:recovery_auditlog_change", args=[cancel.pk]) in body  # the origin's cancel


def test_settings_row_reads_key_old_new(admin_client: Client) -> None:
    entry = factories.AuditLogFactory(
        action="trade_settings.auto_recovery.update",
        resource_type="trade_settings",
        detail={
            "before": {"new_timeout_seconds": 45, "note": "x"},
            "after": {"new_timeout_seconds": 60, "note": "x", "blackout_windows": []},
            "changed_keys": ["new_timeout_seconds", "blackout_windows"],
        },
    )
    body = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "new_timeout_seconds: 45 → 60; blackout_windows: (absent) → []" in body
    page = admin_client.get(reverse("admin:recovery_auditlog_change", args=[entry.pk])).content.decode()
    assert 'class="settings-diff decision-cards"' in page


def test_a_long_settings_change_is_summarised_by_whole_changes_and_shown_whole(admin_client: Client) -> None:
    windows = [{"start": f"{h:02d}:00", "end": f"{h:02d}:05"} for h in range(8)]
    after = {f"key_number_{n:02d}_with_a_long_name": n for n in range(12)} | {"blackout_windows": windows}
    entry = factories.AuditLogFactory(
        action="trade_settings.auto_recovery.update",
        resource_type="trade_settings",
        detail={"before": {}, "after": after, "changed_keys": sorted(after)},
    )
    summary = audit_summary(entry)
    *shown, more = summary.split("; ")
    assert re.fullmatch(r"and \d+ more keys", more) and len(shown) + int(more.split()[1]) == len(after)
    for item in shown:  # each change whole: its key, its old value, its new one
        assert re.fullmatch(r"[a-z0-9_]+: \(absent\) → .+", item), item
    page = admin_client.get(reverse("admin:recovery_auditlog_change", args=[entry.pk])).content.decode()
    assert json.dumps(windows, sort_keys=True).replace('"', "&quot;") in page  # the whole value, not cut
    assert all(key in page for key in after)


def test_filters(admin_client: Client, swept: dict) -> None:
    url = reverse(CHANGELIST)
    cancels = set(AuditLog.objects.filter(action=ACTION_CANCEL).values_list("pk", flat=True))
    assert ids(admin_client.get(url, {"action": ACTION_CANCEL})) == cancels
    assert len(ids(admin_client.get(url, {"resource_type": "auto_recovery"}))) == 1
    admins = ids(admin_client.get(url, {"actor_kind": "admin"}))
    assert admins == set(AuditLog.objects.filter(actor="admin:ops").values_list("pk", flat=True))
    # Every actor present is a choice of its own, beside the kinds.
    page = admin_client.get(url)
    assert "?actor_kind=admin%3Aops" in page.content.decode()
    assert ids(admin_client.get(url, {"actor_kind": "admin:ops"})) == admins
    assert len(ids(admin_client.get(url, {"actor_kind": "system"}))) == 2
    assert len(ids(admin_client.get(url, {"since": "30d"}))) == AuditLog.objects.count() - 1
    assert len(ids(admin_client.get(url, {"since": "7d"}))) == AuditLog.objects.count() - 1


def test_sweep_link_shows_exactly_that_sweeps_rows(admin_client: Client, swept: dict) -> None:
    audit_id = swept["result"].audit_id
    shown = ids(admin_client.get(reverse(CHANGELIST), {"sweep": audit_id}))
    expected = set(
        AuditLog.objects.filter(action__in=[ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP]).values_list(
            "pk", flat=True
        )
    )
    assert shown == expected and len(shown) == 5


@pytest.mark.parametrize("term", ["aud-0", "{order_id}", "admin:ops", ACTION_SWEEP])
def test_search_by_client_order_id_resource_id_actor_or_action(
    admin_client: Client, swept: dict, term: str
) -> None:
    order = swept["orders"][0]
    shown = ids(admin_client.get(reverse(CHANGELIST), {"q": term.format(order_id=order.pk)}))
    assert shown
    rows = AuditLog.objects.filter(pk__in=shown)
    if term in ("aud-0", "{order_id}"):
        assert {(r.resource_type, r.resource_id) for r in rows} == {("trade_order", order.pk)}
    elif term == "admin:ops":
        assert set(rows.values_list("actor", flat=True)) == {"admin:ops"}
    else:
        assert set(rows.values_list("action", flat=True)) == {ACTION_SWEEP}


def test_chain_link_from_the_order_page_lists_the_chain(admin_client: Client, swept: dict) -> None:
    order = swept["orders"][0]
    replacement = TradeOrder.objects.get(client_order_id="aud-0-r1")
    shown = ids(admin_client.get(reverse(CHANGELIST), {"resource_ids": f"{order.pk},{replacement.pk}"}))
    expected = AuditLog.objects.filter(
        resource_type="trade_order", resource_id__in=[order.pk, replacement.pk]
    )
    assert shown == set(expected.values_list("pk", flat=True)) and len(shown) == 2


def test_a_page_costs_a_fixed_number_of_queries(
    admin_client: Client, swept: dict, django_assert_num_queries
) -> None:
    url = reverse(CHANGELIST)
    with CaptureQueriesContext(connections[trading_alias()]) as first:
        admin_client.get(url)
    factories.AuditLogFactory.create_batch(80, action=ACTION_CANCEL)
    with django_assert_num_queries(len(first)):
        page = admin_client.get(url)
    assert len(page.context["cl"].result_list) == 87
    assert len(first) <= 8


def test_viewer_without_permission_cannot_see_the_audit(
    client: Client, django_user_model, swept: dict
) -> None:
    user = django_user_model.objects.create_user(username="nobody", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_tradeorder"))
    client.force_login(user)
    assert client.get(reverse(CHANGELIST)).status_code == 403


def test_a_refused_admin_page_is_a_403_in_the_admin_naming_the_permission(
    client: Client, django_user_model
) -> None:
    user = django_user_model.objects.create_user(username="nobody2", password="pw", is_staff=True)
    client.force_login(user)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 403
    body = response.content.decode()
    assert 'id="site-name"' in body and "recovery.view_auditlog" in body
