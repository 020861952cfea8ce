"""The orders admin: read only, the recovery action and button, permissions, queries per page."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP
from recovery.db.models import AuditLog, SweepRun, TradeOrder, TradeSettings
from recovery.db.routers import trading_alias
from recovery.tests import factories

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:recovery_tradeorder_changelist"
SWEEP = "admin:recovery_tradeorder_sweep"


def stale(**fields):  # noqa: ANN001, ANN201
    created = timezone.now() - dt.timedelta(minutes=10)
    return factories.TradeOrderFactory(created_at=created, updated_at=created, **fields)


def user_with(django_user_model, username: str, *codenames: str):  # noqa: ANN001, ANN201
    user = django_user_model.objects.create_user(username=username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def setup(bridge) -> None:  # noqa: ANN001
    # allow_replace_outside_rth: the admin uses the real clock, whatever the hour of the test.
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()


@pytest.fixture
def ops(client: Client, django_user_model, setup) -> Client:  # noqa: ANN001
    user = user_with(django_user_model, "ops", "view_tradeorder", "view_auditlog", "run_auto_recovery")
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client: Client, django_user_model, setup) -> Client:  # noqa: ANN001
    user = user_with(django_user_model, "viewer", "view_tradeorder", "view_auditlog")
    client.force_login(user)
    return client


def checksum() -> str:
    rows = [
        list(TradeOrder.objects.order_by("id").values_list()),
        list(AuditLog.objects.order_by("id").values_list()),
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def action_post(client: Client, ids: list[int], **extra: str):  # noqa: ANN201
    data = {"action": "recover_selected", "_selected_action": [str(i) for i in ids], **extra}
    return client.post(reverse(CHANGELIST), data)


# --- permissions ------------------------------------------------------------------------


def test_viewer_sees_orders_but_neither_the_action_nor_the_button(viewer: Client) -> None:
    stale(client_order_id="v-1")
    page = viewer.get(reverse(CHANGELIST))
    assert page.status_code == 200
    body = page.content.decode()
    assert "v-1" in body
    assert "recover_selected" not in body
    assert "Run recovery sweep" not in body


def test_ops_sees_the_action_and_the_button(ops: Client) -> None:
    body = ops.get(reverse(CHANGELIST)).content.decode()
    assert 'value="recover_selected"' in body
    assert reverse(SWEEP) in body


def test_forged_posts_without_the_permission_are_403(viewer: Client) -> None:
    order = stale()
    assert action_post(viewer, [order.pk]).status_code == 403
    assert action_post(viewer, [order.pk], confirm="yes").status_code == 403
    assert viewer.get(reverse(SWEEP)).status_code == 403
    assert viewer.post(reverse(SWEEP), {"confirm": "yes"}).status_code == 403
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_csrf_stays_on(django_user_model, setup) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with(django_user_model, "ops2", "view_tradeorder", "run_auto_recovery"))
    order = stale()
    assert client.post(reverse(SWEEP), {"confirm": "yes"}).status_code == 403
    assert action_post(client, [order.pk], confirm="yes").status_code == 403
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


def test_orders_are_read_only_even_for_superusers(admin_client: Client, setup) -> None:
    order = stale()
    change = reverse("admin:recovery_tradeorder_change", args=[order.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.post(change, {"status": "FILLED"}).status_code == 403
    assert admin_client.get(reverse("admin:recovery_tradeorder_add")).status_code == 403
    assert admin_client.get(reverse("admin:recovery_tradeorder_delete", args=[order.pk])).status_code == 403
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"


# --- preview and run --------------------------------------------------------------------


def test_preview_shows_each_decision_and_the_gates_and_writes_nothing(ops: Client) -> None:
    market = stale(client_order_id="p-mkt")
    bad = stale(client_order_id="p-bad", side="HOLD")
    filled = stale(client_order_id="p-filled", status="FILLED", filled_quantity=10)
    acked = stale(client_order_id="p-acked", ib_order_id=77)
    young = factories.TradeOrderFactory(client_order_id="p-young", created_at=timezone.now())
    before = checksum()
    page = action_post(ops, [market.pk, bad.pk, filled.pk, acked.pk, young.pk])
    assert page.status_code == 200
    body = page.content.decode()
    assert checksum() == before
    assert 'id="recovery-gates"' in body and "(ib; connected)" in body
    assert "will send: the backend's direct-order loop (ib, paper orders" in body
    assert 'id="recovery-settings"' in body
    preview = page.context["report"]
    decided = {o["client_order_id"]: (o["decision"], o["reason"]) for o in preview["orders"]}
    assert decided == {"p-mkt": ("replace", "replaced"), "p-bad": ("cancel", "invalid_order")}
    left = {a["client_order_id"]: a["why"] for a in preview["left_alone"]}
    assert left == {"p-filled": "not_new", "p-acked": "acknowledged", "p-young": "too_young"}
    assert "acknowledged" in body and "too_young" in body


def test_confirmed_run_writes_what_the_service_would_with_the_admin_actor(ops: Client) -> None:
    first, second = stale(client_order_id="c-1"), stale(client_order_id="c-2")
    untouched = stale(client_order_id="c-3")
    response = action_post(ops, [first.pk, second.pk], confirm="yes")
    assert response.status_code == 302
    assert TradeOrder.objects.get(pk=first.pk).status == "CANCELED"
    assert TradeOrder.objects.get(pk=untouched.pk).status == "NEW"
    assert set(TradeOrder.objects.filter(status="NEW").values_list("client_order_id", flat=True)) == {
        "c-1-r1",
        "c-2-r1",
        "c-3",
    }
    assert set(AuditLog.objects.values_list("actor", flat=True)) == {"admin:ops"}
    assert AuditLog.objects.filter(action=ACTION_CANCEL).count() == 2
    assert AuditLog.objects.filter(action=ACTION_REPLACE).count() == 2
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    message = list(ops.get(reverse(CHANGELIST)).context["messages"])[0]
    assert "scanned 2, cancelled 2, replaced 2, skipped 0, failed 0" in str(message)
    assert f"?sweep={sweep.pk}" in str(message)


def test_run_recovery_sweep_button_previews_then_runs_everything(ops: Client) -> None:
    orders = [stale() for _ in range(3)]
    before = checksum()
    preview = ops.get(reverse(SWEEP))
    assert preview.status_code == 200 and preview.context["report"]["scanned"] == 3
    assert checksum() == before
    assert ops.post(reverse(SWEEP), {"confirm": "yes"}).status_code == 302
    assert all(TradeOrder.objects.get(pk=o.pk).status == "CANCELED" for o in orders)


def test_selected_orders_may_pass_the_breaker_only_with_the_confirmed_number(ops: Client) -> None:
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_sweep": 1,
        }
    )
    orders = [stale() for _ in range(2)]
    ids = [o.pk for o in orders]
    page = action_post(ops, ids)
    assert page.context["report"]["circuit_open"] is True
    assert b'id="confirm-breaker"' in page.content and b"I confirm re-placing 2 orders" in page.content
    action_post(ops, ids, confirm="yes")  # box not ticked: the breaker holds
    assert TradeOrder.objects.filter(pk__in=ids, status="NEW").count() == 2
    action_post(ops, ids, confirm="yes", confirmed_replacements="1")  # a stale number does not pass
    assert TradeOrder.objects.filter(pk__in=ids, status="NEW").count() == 2
    action_post(ops, ids, confirm="yes", confirmed_replacements="2")
    assert TradeOrder.objects.filter(pk__in=ids, status="CANCELED").count() == 2
    sweep = AuditLog.objects.filter(action=ACTION_SWEEP).order_by("-id").first()
    assert sweep.detail["breaker_overridden"] is True and sweep.detail["replaced"] == 2


def test_the_sweep_button_never_passes_the_breaker(ops: Client) -> None:
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_sweep": 1,
        }
    )
    orders = [stale() for _ in range(2)]
    page = ops.get(reverse(SWEEP))
    assert b'id="confirm-breaker"' not in page.content
    assert b"The circuit breaker holds: nothing will be changed" in page.content
    assert b'id="recovery-confirm" class="default" disabled' in page.content
    ops.post(reverse(SWEEP), {"confirm": "yes", "confirmed_replacements": "2"})
    assert all(TradeOrder.objects.get(pk=o.pk).status == "NEW" for o in orders)


# --- list, filters, search --------------------------------------------------------------


def test_changelist_columns_filters_and_chain_links(ops: Client) -> None:
    order = stale(client_order_id="chain-1")
    action_post(ops, [order.pk], confirm="yes")
    replacement = TradeOrder.objects.get(client_order_id="chain-1-r1")
    body = ops.get(reverse(CHANGELIST)).content.decode()
    assert "attempt 1 of" in body and "replaced by" in body
    assert reverse("admin:recovery_tradeorder_change", args=[replacement.pk]) in body
    # Both ways on the orders' own pages too: the original names its replacement and back.
    original_page = ops.get(reverse("admin:recovery_tradeorder_change", args=[order.pk])).content.decode()
    assert "replaced by" in original_page
    assert reverse("admin:recovery_tradeorder_change", args=[replacement.pk]) in original_page
    assert "Auto-recovery cancelled it: Cancel and re-place" in original_page
    replacement_page = ops.get(reverse("admin:recovery_tradeorder_change", args=[replacement.pk]))
    assert reverse("admin:recovery_tradeorder_change", args=[order.pk]) in replacement_page.content.decode()
    recovered = ops.get(reverse(CHANGELIST) + "?recovery=yes").context["cl"].result_list
    assert [o.pk for o in recovered] == [replacement.pk]
    stale_page = ops.get(reverse(CHANGELIST) + "?stale=yes").context["cl"].result_list
    assert list(stale_page) == []  # the replacement is brand new
    by_status = ops.get(reverse(CHANGELIST) + "?status=CANCELED").context["cl"].result_list
    assert [o.pk for o in by_status] == [order.pk]


@pytest.mark.parametrize("term", ["srch-1", "msft", "{pk}"])
def test_search_by_client_order_id_symbol_or_id(ops: Client, term: str) -> None:
    target = stale(client_order_id="srch-1", symbol="MSFT")
    stale(client_order_id="srch-2", symbol="AAPL")
    result = ops.get(reverse(CHANGELIST), {"q": term.format(pk=target.pk)}).context["cl"].result_list
    assert [o.pk for o in result] == [target.pk]


def test_order_page_links_to_its_audit_entries_and_its_chain(ops: Client) -> None:
    order = stale(client_order_id="trail-1")
    action_post(ops, [order.pk], confirm="yes")
    replacement = TradeOrder.objects.get(client_order_id="trail-1-r1")
    body = ops.get(reverse("admin:recovery_tradeorder_change", args=[replacement.pk])).content.decode()
    assert f"resource_ids={replacement.pk}" in body
    assert f"resource_ids={order.pk}%2C{replacement.pk}" in body


# --- large tables -----------------------------------------------------------------------


def _page_queries(client: Client, url: str) -> int:
    with (
        CaptureQueriesContext(connections[trading_alias()]) as trading,
        CaptureQueriesContext(connections["default"]) as default,
    ):
        assert client.get(url).status_code == 200
    return len(trading) if trading_alias() == "default" else len(trading) + len(default)


def test_a_page_costs_the_same_queries_whatever_its_rows(ops: Client, django_assert_num_queries) -> None:
    for i in range(3):
        stale(client_order_id=f"q-{i}", params={"auto_recovery": {"attempts": 1, "origin_order_id": 1}})
    few = _page_queries(ops, reverse(CHANGELIST))
    for i in range(3, 60):
        stale(client_order_id=f"q-{i}", params={"auto_recovery": {"attempts": 1, "origin_order_id": 1}})
    with django_assert_num_queries(few):
        ops.get(reverse(CHANGELIST))
    # 5 for the list (session, user, two permission reads, capped count... rows), 1 for the
    # replacements, 5 for the page's one dry run (settings, ib_settings, today's halts, the
    # replacements of the last hour for the rolling breaker, candidates), 2 for the backend's
    # sender (rule 10b: replacements still waiting for it, its queue).
    assert few <= 14


def _bulk(count: int, *, prefix: str, age_minutes: float = 0, **fields: object) -> None:
    created = timezone.now() - dt.timedelta(minutes=age_minutes)
    fields.setdefault("side", "BUY")
    TradeOrder.objects.bulk_create(
        [
            TradeOrder(
                client_order_id=f"{prefix}-{i}",
                symbol="X",
                quantity=1,
                created_at=created,
                updated_at=created,
                **fields,
            )
            for i in range(count)
        ]
    )


def _order_counts(queries: CaptureQueriesContext) -> list[str]:
    # The orders' counts (the rolling breaker's count of the hour's replacements has its own cap).
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "TRADE_ORDERS" in q["sql"].upper()]


def test_the_whole_list_counts_ten_pages_ahead_and_says_so(ops: Client) -> None:
    _bulk(1150, prefix="bulk", status="FILLED")
    with CaptureQueriesContext(connections[trading_alias()]) as queries:
        page = ops.get(reverse(CHANGELIST))
    cl = page.context["cl"]
    assert (cl.paginator.bounded, cl.paginator.bound, cl.result_count) == (True, 1100, 1101)
    assert b"more than 1,100 orders" in page.content and b'id="count-bounded"' in page.content
    counts = _order_counts(queries)
    assert counts and all("LIMIT 1101" in sql.upper() for sql in counts)  # never a full COUNT(*)

    # Page 11 counts ten pages past itself: the 1,150 rows are all counted, exactly.
    eleventh = ops.get(reverse(CHANGELIST) + "?p=11")
    cl = eleventh.context["cl"]
    assert (cl.paginator.bounded, cl.result_count) == (False, 1150)
    assert b"1,150 orders" in eleventh.content and b"more than" not in eleventh.content
    ids = list(TradeOrder.objects.order_by("-id").values_list("id", flat=True))
    assert [o.pk for o in cl.result_list] == ids[1000:1100]  # rows 1,001 to 1,100, not page 10 again
    assert [o.pk for o in ops.get(reverse(CHANGELIST) + "?p=12").context["cl"].result_list] == ids[1100:]


def test_the_stale_filter_counts_exactly_past_1000_and_pages_there(ops: Client) -> None:
    _bulk(1050, prefix="stale", age_minutes=10)
    _bulk(300, prefix="done", age_minutes=10, status="FILLED")
    _bulk(20, prefix="young")  # NEW, not stale yet
    with CaptureQueriesContext(connections[trading_alias()]) as queries:
        page = ops.get(reverse(CHANGELIST) + "?stale=yes")
    cl = page.context["cl"]
    assert (cl.paginator.bounded, cl.result_count) == (False, 1050)
    assert b"1,050 orders" in page.content and b"more than" not in page.content
    count_sql = _order_counts(queries)[0]  # the list's; the page's dry run counts its own things
    assert "LIMIT" not in count_sql.upper()  # an exact COUNT(*)

    eleventh = ops.get(reverse(CHANGELIST) + "?stale=yes&p=11").context["cl"]
    stale_ids = list(
        TradeOrder.objects.filter(client_order_id__startswith="stale-")
        .order_by("-id")
        .values_list("id", flat=True)
    )
    assert [o.pk for o in eleventh.result_list] == stale_ids[1000:]
    # Status NEW is counted exactly too: the stale and the young.
    assert ops.get(reverse(CHANGELIST) + "?status=NEW").context["cl"].result_count == 1070


@pytest.mark.mysql
def test_the_stale_count_reads_the_status_created_at_index(ops: Client) -> None:
    _bulk(1050, prefix="stale", age_minutes=10)
    _bulk(2000, prefix="done", age_minutes=10, status="FILLED")
    with CaptureQueriesContext(connections[trading_alias()]) as queries:
        assert ops.get(reverse(CHANGELIST) + "?stale=yes").context["cl"].result_count == 1050
    count_sql = _order_counts(queries)[0]
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(f"EXPLAIN {count_sql}")
        columns = [c[0] for c in cursor.description]
        plan = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    orders = [row for row in plan if row["table"] == "trade_orders"]
    assert orders, plan
    assert all(row["type"] != "ALL" for row in plan), plan
    assert orders[0]["key"] == "idx_trade_orders_status_created_at", plan
    # The page's rows too: newest first by creation, read from the index's end, not the table.
    (rows_sql,) = [q["sql"] for q in queries if "ORDER BY `trade_orders`.`created_at` DESC" in q["sql"]]
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(f"EXPLAIN {rows_sql}")
        columns = [c[0] for c in cursor.description]
        (row,) = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    assert row["type"] in ("range", "ref") and row["key"] == "idx_trade_orders_status_created_at", row
    assert "filesort" not in (row["Extra"] or ""), row


def test_new_orders_are_listed_newest_first_by_creation(ops: Client) -> None:
    later = stale(client_order_id="made-later")
    earlier = stale(client_order_id="made-earlier")  # a higher id, an older order
    TradeOrder.objects.filter(pk=earlier.pk).update(created_at=later.created_at - dt.timedelta(minutes=5))
    for query in ("?stale=yes", "?status=NEW"):
        listed = [o.client_order_id for o in ops.get(reverse(CHANGELIST) + query).context["cl"].result_list]
        assert listed == ["made-later", "made-earlier"], query
    listed = [o.client_order_id for o in ops.get(reverse(CHANGELIST)).context["cl"].result_list]
    assert listed == ["made-earlier", "made-later"]  # the whole list: newest id first


# --- what the sweep would do, said the same way everywhere -----------------------------


def test_sweep_would_column_labels_stale_orders_and_non_candidates(ops: Client) -> None:
    stale(client_order_id="sw-mkt")
    stale(client_order_id="sw-bad", side="HOLD")
    factories.TradeOrderFactory(client_order_id="sw-young", created_at=timezone.now())
    stale(client_order_id="sw-part", filled_quantity=2)
    stale(client_order_id="sw-done", status="FILLED")
    page = ops.get(reverse(CHANGELIST))
    rows = {o.client_order_id: o.fate for o in page.context["cl"].result_list}
    assert (rows["sw-mkt"].action, rows["sw-mkt"].label) == (
        "replace",
        "Cancel and re-place: nothing stops it",
    )
    assert rows["sw-bad"].label.startswith("Cancel only: the order row is unusable (side 'HOLD'")
    assert rows["sw-young"].label == "Not a candidate: not stale yet (younger than the timeout)"
    assert rows["sw-part"].label == "Not a candidate: it has a fill"
    assert rows["sw-done"] is None  # not NEW: no dry run for it, the column shows "-"
    body = page.content.decode()
    assert '<code class="reason-code">replaced</code>' in body and "invalid_order" in body


def test_stale_filter_is_the_sweeps_candidates_and_the_rest_are_apart(ops: Client) -> None:
    candidate = stale(client_order_id="f-cand")
    partial = stale(client_order_id="f-part", filled_quantity=1)
    intent = stale(client_order_id="f-intent", params={"intent_only": True})
    acked = stale(client_order_id="f-acked", ib_perm_id=5)
    factories.TradeOrderFactory(client_order_id="f-young", created_at=timezone.now())
    shown = ops.get(reverse(CHANGELIST) + "?stale=yes").context["cl"].result_list
    assert [o.pk for o in shown] == [candidate.pk]
    left = ops.get(reverse(CHANGELIST) + "?stale=left").context["cl"].result_list
    assert {o.pk for o in left} == {partial.pk, intent.pk, acked.pk}
    preview = action_post(ops, [candidate.pk, partial.pk, intent.pk, acked.pk]).context["report"]
    assert [o["id"] for o in preview["orders"]] == [candidate.pk]


def test_the_filter_is_kept_after_a_recovery(ops: Client) -> None:
    order = stale(client_order_id="keep-1")
    url = reverse(CHANGELIST) + "?status=NEW&stale=yes"
    data = {"action": "recover_selected", "_selected_action": [str(order.pk)], "confirm": "yes"}
    response = ops.post(url, data)
    assert response.status_code == 302 and response["Location"] == url
    # The sweep button carries the filters there and back, as Django's change pages do.
    changelist = ops.get(url).content.decode()
    assert reverse(SWEEP) + "?_changelist_filters=status%3DNEW%26stale%3Dyes" in changelist
    response = ops.post(
        reverse(SWEEP) + "?_changelist_filters=status%3DNEW%26stale%3Dyes", {"confirm": "yes"}
    )
    assert response.status_code == 302 and response["Location"] == url


def test_preview_puts_what_happens_first_with_the_orders_facts(ops: Client) -> None:
    order = stale(
        client_order_id="pv-1", symbol="MSFT", side="SELL", quantity=7, order_type="LMT", limit_price=50.0
    )
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_price_deviation_pct": 0,
        }
    )
    page = action_post(ops, [order.pk])
    body = page.content.decode()
    [row] = page.context["rows"]
    assert (row["symbol"], row["side"], row["quantity"], row["order_type"], row["limit_price"]) == (
        "MSFT",
        "SELL",
        7.0,
        "LMT",
        50.0,
    )
    assert row["age"] == "10 min" and row["fate"].label == "Cancel and re-place: nothing stops it"
    assert body.index('id="recovery-decisions"') < body.index('id="recovery-gates"')
    assert "<details" in body and "[{" not in body and "{'" not in body  # folded, and no Python repr


def test_preview_warns_when_open_orders_is_missing_and_orders_are_about_to_change(ops: Client) -> None:
    order = stale(client_order_id="warn-1")
    page = action_post(ops, [order.pk])
    warnings = page.context["warnings"]
    assert any(w.startswith("open_orders.json gives no data") for w in warnings)
    assert 'id="recovery-warnings"' in page.content.decode()


def test_breaker_open_shows_each_orders_would_be_fate_and_asks_at_the_checkbox(ops: Client) -> None:
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_sweep": 1,
        }
    )
    ids = [stale(client_order_id=f"br-{i}").pk for i in range(2)]
    page = action_post(ops, ids)
    labels = [r["fate"].label for r in page.context["rows"]]
    assert (
        labels == ["Left alone: circuit breaker open; without it: Cancel and re-place: nothing stops it"] * 2
    )
    assert b'id="recovery-confirm" class="default">' in page.content  # the override applies here
    before = checksum()
    refused = action_post(ops, ids, confirm="yes")  # not ticked
    assert refused.status_code == 200 and checksum() == before
    body = refused.content.decode()
    assert 'id="breaker-error"' in body and "tick this box to re-place 2 orders" in body
    assert body.index('id="breaker-error"') < body.index('id="confirm-breaker"')
    assert not SweepRun.objects.exists()  # nothing was run, not even a breaker-open sweep


def test_a_run_that_differs_from_its_preview_says_so_in_words(ops: Client) -> None:
    first, second, third = (stale(client_order_id=f"d-{n}") for n in (1, 2, 3))
    ids = [first.pk, second.pk, third.pk]
    shown = action_post(ops, ids).context["shown_decisions"]
    TradeOrder.objects.filter(pk=second.pk).update(ib_order_id=99)  # the executor got to it meanwhile
    # ... and the backend's own loop took the third back.
    TradeOrder.objects.filter(pk=third.pk).update(params={"direct_retry": {"pending": True}})
    action_post(ops, ids, confirm="yes", shown_decisions=shown)
    [message] = list(ops.get(reverse(CHANGELIST)).context["messages"])
    text = str(message)
    assert message.level_tag == "warning"
    assert "The run did not do what the confirmation promised for these orders" in text
    promised = "promised Cancel and re-place: nothing stops it (replaced)"
    assert f"#{second.pk}: {promised}; the run: not a candidate any more" in text
    assert f"#{third.pk} d-3: {promised}; the run: Left alone: the trading backend may still send it" in text
    assert "(owned_by_backend)" in text
    assert f"#{first.pk}" not in text  # done as promised: not flagged


def test_a_confirmed_breaker_override_is_what_was_promised(ops: Client) -> None:
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_sweep": 1,
        }
    )
    ids = [stale(client_order_id=f"o-{n}").pk for n in (1, 2)]
    page = action_post(ops, ids)
    assert {o["reason"] for o in page.context["report"]["orders"]} == {"circuit_open"}  # held, in the preview
    action_post(
        ops, ids, confirm="yes", confirmed_replacements="2", shown_decisions=page.context["shown_decisions"]
    )
    [message] = list(ops.get(reverse(CHANGELIST)).context["messages"])
    assert message.level_tag == "success", str(message)
    assert "replaced 2" in str(message) and "promised" not in str(message)


def test_a_breaker_that_still_holds_after_the_override_is_flagged(ops: Client) -> None:
    # The hourly cap is never passed: the confirmation promised two replacements, the run made none.
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_sweep": 1,
        }
    )
    ids = [stale(client_order_id=f"h-{n}").pk for n in (1, 2)]
    shown = action_post(ops, ids).context["shown_decisions"]
    TradeSettings.objects.update(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_sweep": 1,
            "max_replacements_per_hour": 1,
        }
    )
    action_post(ops, ids, confirm="yes", confirmed_replacements="2", shown_decisions=shown)
    [message] = list(ops.get(reverse(CHANGELIST)).context["messages"])
    text = str(message)
    assert message.level_tag == "error"
    promised = "promised Cancel and re-place: nothing stops it (replaced)"
    assert f"#{ids[0]} h-1: {promised}; the run: Left alone: circuit breaker open" in text
    assert "(circuit_open)" in text


def test_a_run_as_previewed_is_a_plain_success(ops: Client) -> None:
    order = stale(client_order_id="same-1")
    shown = action_post(ops, [order.pk]).context["shown_decisions"]
    action_post(ops, [order.pk], confirm="yes", shown_decisions=shown)
    [message] = list(ops.get(reverse(CHANGELIST)).context["messages"])
    assert message.level_tag == "success" and "promised" not in str(message)


def test_forbidden_action_is_a_403_page_in_the_admin_naming_the_permission(viewer: Client) -> None:
    order = stale()
    response = action_post(viewer, [order.pk])
    assert response.status_code == 403
    body = response.content.decode()
    assert 'id="site-name"' in body and "recovery.run_auto_recovery" in body
    assert viewer.get(reverse(SWEEP)).status_code == 403


def test_preview_costs_the_same_queries_whatever_its_orders(ops: Client, django_assert_num_queries) -> None:
    few = [stale(client_order_id=f"pq-{i}").pk for i in range(2)]
    with CaptureQueriesContext(connections[trading_alias()]) as first:
        assert action_post(ops, few).status_code == 200
    many = few + [stale(client_order_id=f"pq-{i}").pk for i in range(2, 40)]
    with django_assert_num_queries(len(first)):
        assert action_post(ops, many).status_code == 200


def test_the_sweep_preview_counts_every_stale_order_past_a_runs_200(ops: Client) -> None:
    _bulk(230, prefix="hold", age_minutes=10, side="HOLD")  # cancel only: the breaker stays shut
    preview = ops.get(reverse(SWEEP))
    assert preview.context["report"]["scanned"] == 200  # a run acts on at most 200
    assert preview.context["summary"].startswith(
        "230 stale orders now; this run decides 200 of them: 0 to cancel and re-place, "
        "200 to cancel only, 0 left alone; the other 30 wait for later runs"
    )
    assert TradeOrder.objects.filter(status="NEW").count() == 230  # a preview writes nothing
