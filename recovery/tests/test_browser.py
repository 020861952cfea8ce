"""The admin through a real browser: Debian's chromium driven by Playwright against live_server.

Run on both engines (pytest -m browser selects them in a whole-suite run):
    env -u DATABASE_URL .venv/bin/python -m pytest recovery/tests/test_browser.py -q
    DATABASE_URL=mysql://root@127.0.0.1:3306/tradeops .venv/bin/python -m pytest \
        recovery/tests/test_browser.py -q
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from recovery.audit import ACTION_SETTINGS_UPDATE, ACTION_SWEEP
from recovery.models import AuditLog, TradeOrder, TradeSettings
from recovery.tests import factories

# Playwright's sync API runs an asyncio event loop in this thread, and Django refuses ORM
# calls (factories, asserts on rows) from a thread with a running loop. The ORM calls here
# are plain synchronous ones made between browser steps, never from inside the loop, so
# the check is a false alarm. setdefault: the whole test process sees it once imported.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    # No internet here: without these chromium keeps dialling Google and floods the log.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
PASSWORD = "browser-test-pw-1"
OPS_PERMISSIONS = ("view_tradeorder", "view_auditlog", "run_auto_recovery")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    """A full-page picture under var/screenshots/ (git-ignored); none on CI."""
    if os.environ.get("CI"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def log_in(page: Page, username: str, password: str, *, next_url: str, shot: str) -> None:
    page.goto(reverse("admin:login") + "?next=" + next_url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    screenshot(page, shot)
    page.click("#login-form input[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(next_url) + "$"))


def stale_order(client_order_id: str) -> TradeOrder:
    created = timezone.now() - dt.timedelta(minutes=10)
    return factories.TradeOrderFactory(
        client_order_id=client_order_id, order_type="MKT", created_at=created, updated_at=created
    )


def test_ops_recovers_two_selected_orders_and_reads_the_audit(
    page: Page,
    committed_db: None,
    bridge: object,  # an empty bridge folder: no quotes, none needed for MKT orders
    django_user_model: type[User],
) -> None:
    # allow_replace_outside_rth and IB in mock mode: the result does not depend on the hour.
    factories.TradeSettingsFactory(auto_recovery={"allow_replace_outside_rth": True})
    factories.IbSettingsFactory(api_mode="mock")
    ops = django_user_model.objects.create_user(username="ops", password=PASSWORD, is_staff=True)
    ops.user_permissions.set(Permission.objects.filter(codename__in=OPS_PERMISSIONS))
    first, second, third = (stale_order(f"br-{i}") for i in (1, 2, 3))
    changelist = reverse("admin:recovery_tradeorder_changelist")

    log_in(page, "ops", PASSWORD, next_url=changelist, shot="01-login")

    # The changelist: tick two of the three, choose the action, Go.
    results = page.locator("#result_list")
    for order in (first, second, third):
        expect(results).to_contain_text(order.client_order_id)
    page.check(f'#result_list input.action-select[value="{first.pk}"]')
    page.check(f'#result_list input.action-select[value="{second.pk}"]')
    page.select_option("#changelist-form select[name=action]", label="Recover selected stale orders")
    screenshot(page, "02-changelist")
    page.click('#changelist-form button[name="index"]')

    # The confirmation: a dry run listing the two selected orders, both to be replaced.
    decisions = page.locator("#recovery-decisions tbody tr")
    expect(decisions).to_have_count(2)
    for order in (first, second):
        row = decisions.filter(has_text=order.client_order_id)
        expect(row).to_have_count(1)
        expect(row.locator("td").nth(2)).to_have_text("replace")
    expect(page.locator("#recovery-decisions")).not_to_contain_text(third.client_order_id)
    assert TradeOrder.objects.filter(status="NEW").count() == 3  # the preview wrote nothing
    screenshot(page, "03-confirmation")
    page.click("#recovery-confirm")

    # Back on the changelist with the outcome and a link to the sweep's audit entries.
    expect(page).to_have_url(re.compile(re.escape(changelist) + "$"))
    message = page.locator("ul.messagelist li.success")
    expect(message).to_contain_text("cancelled 2, replaced 2")
    screenshot(page, "04-message")
    message.get_by_role("link", name="See its audit entries").click()

    # The sweep's audit entries: its own row, two cancels and two replacements.
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    expect(page).to_have_url(re.compile(rf"\?sweep={sweep.pk}$"))
    entries = page.locator("#result_list tbody tr")
    expect(entries).to_have_count(5)
    entries.filter(has_text=ACTION_SWEEP).locator("th a").click()

    expect(page).to_have_url(
        re.compile(re.escape(reverse("admin:recovery_auditlog_change", args=[sweep.pk])))
    )
    table = page.locator("table.sweep-decisions")
    expect(table.locator("tr")).to_have_count(3)  # the header and the two orders
    for order in (first, second):
        row = table.locator("tr").filter(has_text=order.client_order_id)
        expect(row.locator("td").nth(2)).to_have_text("replace")
        expect(row.locator("td").nth(4)).to_have_text(f"{order.client_order_id}-r1")
    screenshot(page, "05-audit-entry")

    statuses = dict(TradeOrder.objects.values_list("client_order_id", "status"))
    assert statuses == {
        "br-1": "CANCELED",
        "br-2": "CANCELED",
        "br-3": "NEW",
        "br-1-r1": "NEW",
        "br-2-r1": "NEW",
    }
    replacements = TradeOrder.objects.filter(client_order_id__in=["br-1-r1", "br-2-r1"])
    origins = {o.params["auto_recovery"]["origin_order_id"] for o in replacements}
    assert origins == {first.pk, second.pk}
    assert sweep.actor == "admin:ops"


def test_superuser_fixes_a_bad_timeout_on_the_settings_page(
    page: Page,
    committed_db: None,
    django_user_model: type[User],
) -> None:
    stored = {
        "allow_replace_outside_rth": True,
        "max_auto_retries": 2,
        "new_timeout_seconds": 45,
        "unfilled_timeout_seconds": 300,  # the backend's own key: must survive the save
    }
    row = factories.TradeSettingsFactory(auto_recovery=stored, risk_defaults={"max_position_pct": 0.1})
    django_user_model.objects.create_superuser(username="admin", password=PASSWORD, email="a@example.com")
    change = reverse("admin:recovery_tradesettings_change", args=[row.pk])

    log_in(page, "admin", PASSWORD, next_url=change, shot="06-settings-login")

    timeout = page.locator("#id_new_timeout_seconds")
    expect(timeout).to_have_value("45")
    expect(page.locator("#id_max_auto_retries")).to_have_value("2")
    # The widget's min="1" would stop chromium from submitting 0: drop it, so the server judges.
    timeout.evaluate("input => input.removeAttribute('min')")
    timeout.fill("0")
    page.click('input[name="_save"]')

    # Refused by the server: the page again, the field's own error, nothing written.
    expect(page.locator("p.errornote")).to_be_visible()
    error = page.locator(".field-new_timeout_seconds .errorlist")
    expect(error).to_contain_text("must be between 1 and 86400")
    expect(page.locator("#id_new_timeout_seconds")).to_have_value("0")
    screenshot(page, "07-settings-error")
    assert TradeSettings.objects.get(pk=row.pk).auto_recovery == stored
    assert not AuditLog.objects.filter(action=ACTION_SETTINGS_UPDATE).exists()

    page.fill("#id_new_timeout_seconds", "60")
    page.click('input[name="_save"]')

    expect(page).to_have_url(re.compile(re.escape(reverse("admin:recovery_tradesettings_changelist")) + "$"))
    expect(page.locator("ul.messagelist li.success")).to_contain_text("was changed successfully")
    expect(page.locator("#result_list")).to_contain_text("timeout 60s")
    screenshot(page, "08-settings-saved")

    saved = TradeSettings.objects.get(pk=row.pk)
    assert saved.auto_recovery["new_timeout_seconds"] == 60
    assert {k: v for k, v in saved.auto_recovery.items() if k != "new_timeout_seconds"} == {
        **{k: v for k, v in stored.items() if k != "new_timeout_seconds"},
        # The form writes every typed key; those not stored before get their defaults.
        "enabled": True,
        "max_price_deviation_pct": 1.5,
        "max_replacements_per_sweep": 20,
        "blackout_windows": [],
    }
    assert saved.risk_defaults == {"max_position_pct": 0.1}
    audit = AuditLog.objects.get(action=ACTION_SETTINGS_UPDATE)
    assert audit.actor == "admin:admin" and "new_timeout_seconds" in audit.detail["changed_keys"]


def test_status_page_shows_the_gates_and_the_chart(
    page: Page,
    committed_db: None,
    bridge: object,
    django_user_model: type[User],
) -> None:

    factories.TradeSettingsFactory(auto_recovery={"allow_replace_outside_rth": True})
    factories.IbSettingsFactory(api_mode="mock")
    stale_order("st-1")
    ended = timezone.now() - dt.timedelta(minutes=3)
    factories.SweepRunFactory(
        started_at=ended, duration_seconds=0.4, host="cron-1", scanned=5, cancelled=4, replaced=3, skipped=1
    )
    viewer = django_user_model.objects.create_user(username="watch", password=PASSWORD, is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_tradeorder"))

    log_in(page, "watch", PASSWORD, next_url=reverse("admin:index"), shot="09-status-login")
    page.get_by_role("link", name="Auto-recovery status").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("recovery_status")) + "$"))

    gates = page.locator("#recovery-gates")
    expect(gates).to_contain_text("IB gateway")
    expect(gates).to_contain_text("reachable")
    expect(gates).to_contain_text("Market (NYSE regular hours)")
    expect(gates).to_contain_text("Circuit breaker")
    chart = page.locator("svg#recovery-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect")).to_have_count(48 * 3)
    expect(chart.locator("rect title").filter(has_text="replaced 3")).to_have_count(1)
    expect(page.locator("#recovery-decisions")).to_contain_text("st-1")
    expect(page.locator("#recovery-runs")).to_contain_text("cron-1")
    screenshot(page, "10-status")
