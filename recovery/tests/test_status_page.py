"""The admin's auto-recovery status page, and its server-rendered chart."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recovery.db.models import SweepRun, TradeOrder
from recovery.db.routers import trading_alias
from recovery.ops.charts import _ticks, hourly_buckets, hourly_svg
from recovery.tests import factories

STATUS = "recovery_status"


def beat(started: dt.datetime, **counts: int) -> SweepRun:
    return factories.SweepRunFactory(started_at=started, **counts)


@pytest.fixture
def watcher(client: Client, django_user_model, bridge) -> Client:  # noqa: ANN001
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    user = django_user_model.objects.create_user(username="watch", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_tradeorder"))
    client.force_login(user)
    return client


def stale(**fields):  # noqa: ANN001, ANN201
    created = timezone.now() - dt.timedelta(minutes=5)
    return factories.TradeOrderFactory(created_at=created, updated_at=created, **fields)


@pytest.mark.django_db
def test_status_page_shows_gates_decisions_runs_and_chart(watcher: Client) -> None:
    order = stale(client_order_id="status-1")
    beat(timezone.now() - dt.timedelta(minutes=1), cancelled=2, replaced=1, skipped=3)
    page = watcher.get(reverse(STATUS))
    assert page.status_code == 200
    body = page.content.decode()
    for panel in (
        "recovery-health",
        "recovery-gates",
        "recovery-settings",
        "recovery-decisions",
        "recovery-runs",
    ):
        assert f'id="{panel}"' in body, panel
    assert '<svg id="recovery-chart"' in body
    assert 'src="http' not in body and 'href="http' not in body  # nothing from a CDN: works offline
    assert "status-1" in body and reverse("admin:recovery_tradeorder_change", args=[order.pk]) in body
    assert "next open" in body and "Circuit breaker" in body and "Bridge quotes.json" in body
    assert not TradeOrder.objects.exclude(status="NEW").exists()  # the page's dry run wrote nothing


@pytest.mark.django_db
def test_status_page_is_linked_from_the_admin_index(watcher: Client) -> None:
    assert reverse(STATUS) in watcher.get(reverse("admin:index")).content.decode()


@pytest.mark.django_db
def test_status_page_needs_the_view_permission(client: Client, django_user_model) -> None:  # noqa: ANN001
    user = django_user_model.objects.create_user(username="nope", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(STATUS)).status_code == 403
    assert reverse(STATUS) not in client.get(reverse("admin:index")).content.decode()
    client.logout()
    assert client.get(reverse(STATUS)).status_code == 302  # to the login page


@pytest.mark.django_db
def test_status_page_costs_a_fixed_number_of_queries(watcher: Client, django_assert_num_queries) -> None:
    for i in range(2):
        stale(client_order_id=f"fq-{i}")
        beat(timezone.now() - dt.timedelta(minutes=i + 1), cancelled=1)
    with CaptureQueriesContext(connections[trading_alias()]) as first:
        assert watcher.get(reverse(STATUS)).status_code == 200
    for i in range(2, 40):
        stale(client_order_id=f"fq-{i}")
        beat(timezone.now() - dt.timedelta(minutes=i + 1), cancelled=1)
    with django_assert_num_queries(len(first)):
        page = watcher.get(reverse(STATUS))
    assert len(page.context["status"].runs) == 40 and page.context["report"]["scanned"] == 40
    # The dry run (settings, today's halts, the server's clock, candidates, ib_settings), its
    # orders' facts, the chart's rows, the last 50 runs, the last cron and admin runs, their
    # audit rows; the stale orders' and the non-candidates' exact counts (and, on MariaDB,
    # whether their index exists); the backend's sender (rule 10b: a replacement still
    # waiting for it, its queue); the health's replacements (newest replace rows joined to
    # their orders).
    assert len(first) <= 23


def test_hourly_buckets_sum_runs_per_hour_and_drop_older_ones() -> None:
    now = dt.datetime(2026, 11, 24, 16, 30, tzinfo=dt.UTC)
    rows = [
        (dt.datetime(2026, 11, 24, 16, 5, tzinfo=dt.UTC), 1, 1, 0),
        (dt.datetime(2026, 11, 24, 16, 25, tzinfo=dt.UTC), 2, 0, 5),
        (dt.datetime(2026, 11, 24, 9, 59, tzinfo=dt.UTC), 7, 7, 7),
        (dt.datetime(2026, 11, 22, 15, 0, tzinfo=dt.UTC), 100, 100, 100),  # older than 48 h
    ]
    buckets = hourly_buckets(rows, now=now)
    assert len(buckets) == 48
    assert buckets[-1].start == dt.datetime(2026, 11, 24, 16, tzinfo=dt.UTC)
    assert (buckets[-1].cancelled, buckets[-1].replaced, buckets[-1].skipped) == (3, 1, 5)
    nine = next(b for b in buckets if b.start.hour == 9 and b.start.day == 24)
    assert (nine.cancelled, nine.replaced, nine.skipped) == (7, 7, 7)
    assert sum(b.cancelled for b in buckets) == 10


def test_svg_has_a_bar_per_series_and_hour_scaled_to_the_peak() -> None:
    now = dt.datetime(2026, 11, 24, 16, 30, tzinfo=dt.UTC)
    svg = hourly_svg(hourly_buckets([(now, 4, 2, 0)], now=now))
    assert svg.count("<rect ") == 48 * 3
    assert "cancelled 4" in svg and "replaced 2" in svg
    assert "<script" not in svg
    # Scales to its container (a viewBox, no fixed width) and has a y axis with round ticks.
    assert 'viewBox="0 0 960 240"' in svg and 'width="960"' not in svg
    ticks = re.findall(r'<text class="y-tick"[^>]*>(\d+)</text>', svg)
    assert ticks == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (1, [0, 1]),
        (5, [0, 1, 2, 3, 4, 5]),
        (7, [0, 2, 4, 6, 8]),
        (11, [0, 5, 10, 15]),
        (999, [0, 200, 400, 600, 800, 1000]),
    ],
)
def test_axis_ticks_are_round_steps_up_to_the_peak(peak: int, ticks: list[int]) -> None:
    assert _ticks(peak) == ticks


@pytest.mark.django_db
def test_status_page_tells_cron_runs_from_admin_runs_and_links_runs_to_their_audit(watcher: Client) -> None:
    admin_run = factories.SweepRunFactory(
        started_at=timezone.now() - dt.timedelta(minutes=4), actor="admin:ops", sweep_id="a" * 32, cancelled=1
    )
    audit = factories.AuditLogFactory(
        action="auto_recovery.sweep",
        resource_type="auto_recovery",
        resource_id=None,
        detail={"sweep_id": admin_run.sweep_id},
    )
    body = watcher.get(reverse(STATUS)).content.decode()
    assert "Last cron run (auto_recover): no run recorded yet." in body
    assert "Last admin run: 4 min ago" in body and "by admin:ops" in body
    assert f"?sweep={audit.pk}" in body
    factories.SweepRunFactory(started_at=timezone.now() - dt.timedelta(seconds=30), actor="auto_recover")
    body = watcher.get(reverse(STATUS)).content.decode()
    assert "Last cron run (auto_recover): 30 s ago" in body


@pytest.mark.django_db
def test_status_page_counts_old_new_orders_that_are_not_candidates_apart(watcher: Client) -> None:
    stale(client_order_id="cand-1")
    stale(client_order_id="part-1", filled_quantity=3)
    stale(client_order_id="intent-1", params={"intent_only": True})
    page = watcher.get(reverse(STATUS))
    assert page.context["report"]["scanned"] == 1
    assert page.context["status"].not_candidates == 2
    body = page.content.decode()
    assert "2 older NEW orders</a> are not a candidate" in body and "?stale=left" in body
    assert "Cancel and re-place: nothing stops it" in body


@pytest.mark.django_db
def test_status_page_without_the_permission_is_a_403_in_the_admin_layout(
    client: Client,
    django_user_model,  # noqa: ANN001
) -> None:
    user = django_user_model.objects.create_user(username="nobody", password="pw", is_staff=True)
    client.force_login(user)
    page = client.get(reverse(STATUS))
    assert page.status_code == 403
    body = page.content.decode()
    assert 'id="site-name"' in body and "recovery.view_tradeorder" in body


@pytest.mark.django_db
def test_status_page_counts_every_stale_order_past_a_runs_200(watcher: Client) -> None:
    created = timezone.now() - dt.timedelta(minutes=5)
    TradeOrder.objects.bulk_create(
        [
            # side HOLD: cancel only (rule 6), so the breaker stays shut and a run acts on 200.
            TradeOrder(client_order_id=f"many-{i}", symbol="X", side="HOLD", quantity=1, created_at=created)
            for i in range(260)
        ]
        + [
            TradeOrder(
                client_order_id=f"acked-{i}",
                symbol="X",
                side="BUY",
                quantity=1,
                created_at=created,
                ib_order_id=100 + i,
            )
            for i in range(1005)
        ]
    )
    page = watcher.get(reverse(STATUS))
    status = page.context["status"]
    assert (status.stale_total, page.context["report"]["scanned"]) == (260, 200)
    assert status.not_candidates == 1005  # counted whole, not stopped at 1,000
    body = page.content.decode()
    assert "Stale orders now: 260." in body
    assert "260 stale orders now; this run decides 200 of them" in body and "the other 60 wait" in body
    assert "1,005 older NEW orders</a> are not a candidate" in body


@pytest.mark.django_db
def test_the_admin_header_has_no_view_site_link_to_a_404(watcher: Client) -> None:
    page = watcher.get(reverse("admin:index"))
    assert page.status_code == 200 and page.context["site_url"] is None
    assert b"View site" not in page.content


@pytest.mark.django_db
def test_status_page_says_outcomes_and_health_in_words(watcher: Client) -> None:
    now = timezone.now()
    factories.SweepRunFactory(
        started_at=now - dt.timedelta(minutes=10),
        ended_at=now - dt.timedelta(minutes=10),
        outcome="breaker_open",
    )
    factories.SweepRunFactory(
        started_at=now - dt.timedelta(minutes=9), ended_at=now - dt.timedelta(minutes=9)
    )
    for minutes in (7, 4, 1):
        at = now - dt.timedelta(minutes=minutes)
        factories.SweepRunFactory(
            started_at=at,
            ended_at=at,
            outcome="blocked",
            blocked_by="broker_evidence_unavailable",
            message="the bridge root /srv/bridge does not exist on this host; nothing was changed",
        )
    page = watcher.get(reverse(STATUS))
    body = page.content.decode()
    health = re.search(r'<p id="recovery-health"[^>]*>(.*?)</p>', body, re.S).group(1)
    assert "<strong>Health: Not healthy</strong>" in health
    assert "blocked for 7 minutes: the bridge root /srv/bridge does not exist on this host" in health
    assert "failing:" not in health and "(ok)" not in health
    runs = re.search(r'<table id="recovery-runs">(.*?)</table>', body, re.S).group(1)
    assert runs.count('<td title="blocked">blocked: a sweep-wide gate kept it from acting</td>') == 3
    assert '<td title="breaker_open">circuit breaker open: nothing changed</td>' in runs
    assert '<td title="ok">ok</td>' in runs
    last_cron = re.search(r'<p id="recovery-last-cron">(.*?)</p>', body, re.S).group(1)
    assert "blocked: a sweep-wide gate kept it from acting" in last_cron
