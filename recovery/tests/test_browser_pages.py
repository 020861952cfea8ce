"""Every admin page through a real browser (Debian's chromium), at 1366 px and at 390 px.

On each page: nothing wider than the screen (the page never scrolls sideways), nothing cut
that matters (no text clipped by its box or by an ellipsis, no table that needs scrolling
inside its box, except the two that are meant to scroll on a phone: the status page's chart
and its table of runs), and the cells that carry the answer fully on screen. The walk is an
ops engineer's: the login page, a 100-order preview past the circuit breaker, its result,
the orders list with their chains, an original's and a replacement's page, the audit list,
a sweep's, a cancel's and a settings change's entries, the settings pages (an error too),
the status page; the lockout page on its own; on MariaDB, a list over 3,000 stale orders.

    env -u DATABASE_URL .venv/bin/python -m pytest recovery/tests/test_browser_pages.py -q
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SETTINGS_UPDATE, ACTION_SWEEP
from recovery.db.models import AuditLog, TradeOrder
from recovery.tests import factories
from recovery.tests.test_browser import (  # noqa: F401 (browser, pages: fixtures)
    LAPTOP,
    PASSWORD,
    WIDTHS,
    assert_page_fits,
    browser,
    log_in,
    new_page,
    pages,
    screenshot,
)

pytestmark = pytest.mark.browser


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def long_bridge_root(settings: object, tmp_path: Path) -> Path:
    """A bridge folder deep enough that its evidence paths are longer than a phone is wide."""
    root = tmp_path / "srv-lean-bridge-production-cluster-01" / "shared-output-folder-of-the-executor"
    root.mkdir(parents=True)
    settings.LEAN_BRIDGE_ROOT = root  # type: ignore[attr-defined]
    settings.AUTO_RECOVER_LOCK_DIR = tmp_path / "locks"  # type: ignore[attr-defined]
    return root


def the_orders(root: Path) -> tuple[list[TradeOrder], TradeOrder]:
    """99 stale orders nothing stops, one the broker's files show filled (a long evidence path)."""
    created = timezone.now() - dt.timedelta(minutes=10)
    plain = [
        factories.TradeOrderFactory(
            client_order_id=f"pg-{n:03d}", symbol="AAPL", created_at=created, updated_at=created
        )
        for n in range(99)
    ]
    filled = factories.TradeOrderFactory(
        client_order_id="pg-filled-at-the-broker-while-the-backend-was-down",
        symbol="NVDA",
        quantity=6,
        created_at=created,
        updated_at=created,
    )
    event = {"tag": filled.client_order_id, "status": "Filled", "order_id": 7, "filled": 6, "fill_price": 1}
    event["time"] = iso(created + dt.timedelta(seconds=5))
    (root / "execution_events.jsonl").write_text(json.dumps(event) + "\n")
    return plain, filled


def a_settings_change(row_id: int) -> AuditLog:
    before = {"new_timeout_seconds": 45, "blackout_windows": [{"start": "23:45", "end": "00:15"}]}
    after = {
        "new_timeout_seconds": 60,
        "blackout_windows": [
            {"start": "23:45", "end": "00:15"},
            {"start": "09:25", "end": "09:35"},
            {"start": "15:55", "end": "16:05"},
        ],
        "unfilled_max_price_deviation_pct": 2.5,
    }
    return factories.AuditLogFactory(
        actor="admin:ops",
        action=ACTION_SETTINGS_UPDATE,
        resource_type="trade_settings",
        resource_id=row_id,
        detail={"before": before, "after": after, "changed_keys": sorted(after)},
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_every_admin_page_fits_the_screen_with_nothing_cut(
    browser: Browser,  # noqa: F811
    live_server: LiveServer,
    pages: list[Page],  # noqa: F811
    committed_db: None,
    settings: object,
    tmp_path: Path,
    django_user_model: type[User],
    width: int,
) -> None:
    root = long_bridge_root(settings, tmp_path)
    row = factories.TradeSettingsFactory(
        auto_recovery={
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
            "max_replacements_per_hour": 1000,  # the per-sweep breaker (20) is the one passed here
        }
    )
    factories.IbSettingsFactory()
    plain, filled = the_orders(root)
    settings_change = a_settings_change(row.pk)
    factories.SweepRunFactory(started_at=timezone.now() - dt.timedelta(minutes=3), host="cron-1", scanned=3)
    django_user_model.objects.create_superuser(username="ops", password=PASSWORD, email="ops@example.com")
    changelist = reverse("admin:recovery_tradeorder_changelist")
    page = new_page(browser, live_server, width)
    pages.append(page)
    shot = f"{width}-pages"

    # The login page.
    page.goto(reverse("admin:login"))
    assert_page_fits(page, page.locator("#login-form"))
    screenshot(page, f"{shot}-00-login")

    # The stale orders: what the sweep would do with each, whole.
    log_in(page, "ops", PASSWORD, next_url=f"{changelist}?stale=yes")
    expect(page.locator("#result_list tbody tr")).to_have_count(100)
    assert_page_fits(page, page.locator("td.field-sweep_would"), page.locator("th.field-order_ref"))
    screenshot(page, f"{shot}-01-stale-orders")

    # All 100 selected: the preview, past the per-sweep breaker, every answer whole.
    page.check("#action-toggle")
    page.select_option("#changelist-form select[name=action]", label="Recover selected stale orders")
    page.click('#changelist-form button[name="index"]')
    decisions = page.locator("#recovery-decisions tbody tr")
    expect(decisions).to_have_count(100)
    expect(page.locator("#recovery-summary")).to_contain_text("100 stale orders")
    evidence = decisions.filter(has_text=filled.client_order_id).locator("td.fate-cell")
    expect(evidence).to_contain_text(f"{root}/execution_events.jsonl")
    assert_page_fits(page, page.locator("#recovery-decisions td.fate-cell"), page.locator("#breaker-row"))
    screenshot(page, f"{shot}-02-preview-100")

    # Confirmed past the breaker: the result is what the confirmation promised, no false alarm.
    page.check("#confirm-breaker")
    page.click("#recovery-confirm")
    message = page.locator("ul.messagelist li")
    expect(message).to_have_count(1)
    expect(message).to_contain_text("cancelled 99, replaced 99, skipped 1, failed 0")
    expect(message).not_to_contain_text("promised")
    assert "success" in (message.get_attribute("class") or "")
    assert_page_fits(page, message)
    screenshot(page, f"{shot}-03-result")

    # Every order now, with their chains.
    page.goto(changelist)
    assert_page_fits(page, page.locator("td.field-chain"), page.locator("td.field-sweep_would"))
    screenshot(page, f"{shot}-04-orders")

    # An original's page, its replacement's page, the filled order's page.
    original = plain[0]
    replacement = TradeOrder.objects.get(client_order_id=f"{original.client_order_id}-r1")
    page.goto(reverse("admin:recovery_tradeorder_change", args=[original.pk]))
    expect(page.locator(".field-chain_detail")).to_contain_text(f"replaced by #{replacement.pk}")
    expect(page.locator(".field-updated_at")).to_contain_text(" UTC")  # one date format, Django's fields too
    assert_page_fits(
        page, page.locator(".field-chain_detail .readonly"), page.locator(".field-fate_detail .readonly")
    )
    screenshot(page, f"{shot}-05-original")
    page.goto(reverse("admin:recovery_tradeorder_change", args=[replacement.pk]))
    expect(page.locator(".field-chain_detail")).to_contain_text(f"attempt 1 of #{original.pk}")
    assert_page_fits(
        page, page.locator(".field-backend_pickup .readonly"), page.locator(".field-chain_detail .readonly")
    )
    screenshot(page, f"{shot}-06-replacement")
    page.goto(reverse("admin:recovery_tradeorder_change", args=[filled.pk]))
    assert_page_fits(page, page.locator(".field-fate_detail .readonly"))

    # The audit list and its entries: a sweep's decisions, a cancel's links, a settings change.
    page.goto(reverse("admin:recovery_auditlog_changelist"))
    assert_page_fits(page, page.locator("td.field-summary"), page.locator("td.field-action_words"))
    screenshot(page, f"{shot}-07-audit")
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    page.goto(reverse("admin:recovery_auditlog_change", args=[sweep.pk]))
    expect(page.locator("#content h2").first).to_contain_text("Sweep by admin:ops, ")
    filled_line = page.locator("table.sweep-decisions tbody tr").filter(has_text=filled.client_order_id)
    expect(filled_line).to_contain_text("FILLED event, filled 6 for tag")
    assert_page_fits(page, page.locator("table.sweep-decisions td"))
    screenshot(page, f"{shot}-08-sweep-entry")
    cancel = AuditLog.objects.get(action=ACTION_CANCEL, resource_id=original.pk)
    page.goto(reverse("admin:recovery_auditlog_change", args=[cancel.pk]))
    assert_page_fits(page, page.locator("table.audit-links td"))
    assert AuditLog.objects.filter(action=ACTION_REPLACE).count() == 99
    page.goto(reverse("admin:recovery_auditlog_change", args=[settings_change.pk]))
    diff = page.locator("table.settings-diff")
    expect(diff).to_contain_text('{"end": "16:05", "start": "15:55"}]')  # the whole value, not cut
    assert_page_fits(page, diff.locator("td"), page.locator(".field-summary .readonly"))
    screenshot(page, f"{shot}-09-settings-change")

    # The settings pages, with an error in words (no doubled braces).
    page.goto(reverse("admin:recovery_tradesettings_changelist"))
    assert_page_fits(page, page.locator("td.field-auto_recovery_summary"))
    page.goto(reverse("admin:recovery_tradesettings_change", args=[row.pk]))
    page.fill("#id_other_keys", "[1, 2]")
    page.click('input[name="_save"]')
    error = page.locator(".field-other_keys .errorlist")
    expect(error).to_contain_text('Must be a JSON object ({"key": value, ...}); write {} for no other key.')
    assert_page_fits(page, error)
    screenshot(page, f"{shot}-10-settings-error")

    # The status page and the admin's home.
    page.goto(reverse("recovery_status"))
    expect(page.locator("#recovery-gates")).to_contain_text("no data: the file is missing (missing)")
    assert_page_fits(page, page.locator("#recovery-health"), page.locator("#recovery-gates td"))
    screenshot(page, f"{shot}-11-status")
    page.goto(reverse("admin:index"))
    assert_page_fits(page, page.locator("#recovery-status-link"))
    expect(page.locator("#user-tools")).not_to_contain_text("View site")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_lockout_page_is_the_admins_and_says_how_long(
    browser: Browser,  # noqa: F811
    live_server: LiveServer,
    pages: list[Page],  # noqa: F811
    committed_db: None,
    django_user_model: type[User],
    width: int,
) -> None:
    django_user_model.objects.create_user(username="locked", password=PASSWORD, is_staff=True)
    page = new_page(browser, live_server, width)
    pages.append(page)
    page.goto(reverse("admin:login"))
    for _ in range(5):
        page.fill("#id_username", "locked")
        page.fill("#id_password", "wrong")
        page.click("#login-form input[type=submit]")
        if page.locator("#lockout-message").count():
            break

    expect(page.locator("#site-name")).to_be_visible()  # the admin's header
    expect(page.locator("#lockout-message")).to_contain_text("Too many failed logins for locked")
    expect(page.locator("#lockout-retry")).to_contain_text("Try again in 30 minutes")
    assert page.evaluate("window.innerWidth") == width  # the viewport meta: not 980 px on a phone
    assert_page_fits(page, page.locator("#lockout-message"), page.locator("#lockout-retry"))
    screenshot(page, f"{width}-pages-12-lockout")


@pytest.mark.mysql
@pytest.mark.parametrize("width", WIDTHS)
def test_a_list_over_3000_stale_orders_fits(
    browser: Browser,  # noqa: F811
    live_server: LiveServer,
    pages: list[Page],  # noqa: F811
    committed_db: None,
    bridge: object,
    django_user_model: type[User],
    width: int,
) -> None:
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    created = timezone.now() - dt.timedelta(minutes=10)
    TradeOrder.objects.bulk_create(
        factories.TradeOrderFactory.build(
            client_order_id=f"big-{n:05d}", created_at=created, updated_at=created, symbol=f"S{n % 50}"
        )
        for n in range(3000)
    )
    assert TradeOrder.objects.filter(status="NEW").count() == 3000
    django_user_model.objects.create_superuser(username="ops", password=PASSWORD, email="ops@example.com")
    changelist = reverse("admin:recovery_tradeorder_changelist")
    page = new_page(browser, live_server, width)
    pages.append(page)

    log_in(page, "ops", PASSWORD, next_url=f"{changelist}?stale=yes")
    expect(page.locator("#result_list tbody tr")).to_have_count(100)
    assert_page_fits(page, page.locator("td.field-sweep_would"), page.locator("p.paginator"))
    screenshot(page, f"{width}-pages-13-3000-stale")
    page.goto(f"{changelist}?stale=yes&p=2")
    expect(page.locator("#result_list tbody tr")).to_have_count(100)
    assert_page_fits(page, page.locator("td.field-sweep_would"))
