"""The admin through a real browser: Debian's chromium driven by Playwright against live_server.

The ops path at a laptop's width (1366 px, navigation sidebar open) and a phone's (390 px):
the orders list and its "Sweep would" column, selecting and previewing, confirming, the
audit chain between cancel, replacement and sweep, the settings page with a refused
concurrent save and its re-save, the status page and the 403 page. Each page is checked as
a person would: the answer on screen, no sideways scrolling of the page itself.

Run on both engines (pytest -m browser selects them in a whole-suite run):
    env -u DATABASE_URL .venv/bin/python -m pytest recovery/tests/test_browser.py -q
    DATABASE_URL=mysql://root@127.0.0.1:3306/tradeops .venv/bin/python -m pytest \
        recovery/tests/test_browser.py -q
With README_SCREENSHOTS=1 the run also rewrites the README's pictures in docs/img/.
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
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from recovery.db.audit import ACTION_CANCEL, ACTION_SETTINGS_UPDATE, ACTION_SWEEP
from recovery.db.models import AuditLog, TradeOrder, TradeSettings
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
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "screenshots"
README_IMAGES = REPO / "docs" / "img"
PASSWORD = "browser-test-pw-1"
OPS_PERMISSIONS = ("view_tradeorder", "view_auditlog", "run_auto_recovery")
LAPTOP, PHONE = 1366, 390
WIDTHS = [pytest.param(LAPTOP, id="1366px"), pytest.param(PHONE, id="390px")]
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser: Browser, live_server: LiveServer, width: int) -> Page:
    height = 900 if width == LAPTOP else 844
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": height})
    context.set_default_timeout(10_000)
    return context.new_page()


@pytest.fixture
def pages(browser: Browser, live_server: LiveServer) -> Iterator[list[Page]]:
    """Opens pages on demand (pages.append(new_page(...))) and closes them all at the end."""
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.context.close()


def screenshot(page: Page, name: str, *, readme: str | None = None) -> None:
    """A full-page picture under var/screenshots/ (git-ignored), and the first screen of it
    (<name>-screen.png); none on CI.

    `readme`: with README_SCREENSHOTS=1, also the visible part of the page as
    docs/img/<readme>.png, the pictures of the README's "Using the admin".
    """
    if os.environ.get("CI"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    page.screenshot(path=SCREENSHOTS / f"{name}-screen.png", full_page=False)  # what a glance shows
    if readme and os.environ.get("README_SCREENSHOTS"):
        README_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=README_IMAGES / f"{readme}.png", full_page=False)


def assert_no_sideways_scroll(page: Page) -> None:
    assert page.evaluate(NO_SIDEWAYS_SCROLL), (
        page.url,
        page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"),
    )


# Boxes that clip what they hold (overflow hidden or clip, or an ellipsis) and hold more than
# they show; boxes that scroll sideways inside the page (a table wider than its box), unless
# marked as meant to scroll on a phone. Django's visually-hidden labels clip on purpose.
CUT_BOXES = """() => {
  const found = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('.visually-hidden') || el.clientWidth === 0) continue;
    const style = getComputedStyle(el);
    const over = el.scrollWidth > el.clientWidth + 1;
    const clips = style.textOverflow === 'ellipsis' || ['hidden', 'clip'].includes(style.overflowX);
    const scrolls = ['auto', 'scroll'].includes(style.overflowX) && !el.closest('.scrolls-on-phone');
    if (over && (clips || scrolls)) {
      const text = el.textContent.trim().slice(0, 80);
      found.push(`${el.tagName}.${el.className}: ${el.scrollWidth} > ${el.clientWidth}: ${text}`);
    }
  }
  return found;
}"""

# An element is fully visible when it lies within the screen's width and no box around it
# clips it (an ancestor whose overflow is not visible and whose edges it passes).
NOT_VISIBLE = """(el) => {
  const r = el.getBoundingClientRect();
  if (r.left < -1 || r.right > window.innerWidth + 1) return `off screen: ${r.left}..${r.right}`;
  for (let box = el.parentElement; box; box = box.parentElement) {
    if (getComputedStyle(box).overflowX === 'visible') continue;
    const b = box.getBoundingClientRect();
    if (r.left < b.left - 1 || r.right > b.right + 1) return `clipped by ${box.tagName}.${box.className}`;
  }
  const inside = getComputedStyle(el).overflowX !== 'visible';
  if (inside && el.scrollWidth > el.clientWidth + 1) return 'cut inside';
  return '';
}"""


def assert_nothing_cut(page: Page) -> None:
    assert page.evaluate(CUT_BOXES) == [], page.url


def assert_fully_visible(page: Page, cells: Locator, *, at_least: int = 1) -> None:
    """Every element `cells` matches is whole on screen (the first `at_least` must exist)."""
    expect(cells.nth(at_least - 1)).to_be_attached()
    problems = [
        (i, problem)
        for i, problem in enumerate(cells.evaluate_all(f"els => els.map({NOT_VISIBLE})"))
        if problem
    ]
    assert problems == [], (page.url, problems[:5])


def assert_page_fits(page: Page, *key_cells: Locator) -> None:
    assert_no_sideways_scroll(page)
    assert_nothing_cut(page)
    for cells in key_cells:
        assert_fully_visible(page, cells)


def log_in(page: Page, username: str, password: str, *, next_url: str) -> None:
    page.goto(reverse("admin:login") + "?next=" + next_url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form input[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(next_url) + "$"))


def stale_order(client_order_id: str, *, minutes: int = 10, **fields: object) -> TradeOrder:
    created = timezone.now() - dt.timedelta(minutes=minutes)
    fields.setdefault("order_type", "MKT")
    return factories.TradeOrderFactory(
        client_order_id=client_order_id, created_at=created, updated_at=created, **fields
    )


def ops_user(django_user_model: type[User]) -> User:
    ops = django_user_model.objects.create_user(username="ops", password=PASSWORD, is_staff=True)
    ops.user_permissions.set(Permission.objects.filter(codename__in=OPS_PERMISSIONS))
    return ops


@pytest.mark.parametrize("width", WIDTHS)
def test_ops_path_list_preview_confirm_and_the_audit_chain(
    browser: Browser,
    live_server: LiveServer,
    pages: list[Page],
    committed_db: None,
    bridge: object,  # an empty bridge folder: no quotes, none needed for MKT orders
    django_user_model: type[User],
    width: int,
) -> None:
    # allow_replace_outside_rth and IB in mock mode: the result does not depend on the hour.
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    ops_user(django_user_model)
    first = stale_order("br-1", symbol="AAPL", quantity=10)
    second = stale_order("br-2", symbol="MSFT", side="SELL", quantity=5)
    used_up = stale_order(
        "br-3-r1", symbol="NVDA", minutes=20, params={"auto_recovery": {"attempts": 1, "origin_order_id": 1}}
    )
    young = stale_order("br-young", minutes=0)
    filtered = reverse("admin:recovery_tradeorder_changelist") + "?status=NEW"
    page = new_page(browser, live_server, width)
    pages.append(page)
    shot = f"{width}"

    log_in(page, "ops", PASSWORD, next_url=filtered)

    # The list: what the sweep would do with each NEW order, in words, code beside it.
    results = page.locator("#result_list")
    row = results.locator("tbody tr").filter(has_text="br-1")
    expect(row.locator("td.field-sweep_would")).to_contain_text("Cancel and re-place: nothing stops it")
    expect(row.locator("td.field-sweep_would code")).to_have_text("replaced")
    used = results.locator("tbody tr").filter(has_text="br-3-r1")
    expect(used.locator("td.field-sweep_would")).to_contain_text("Cancel only: retries used up (1 of 1)")
    fresh = results.locator("tbody tr").filter(has_text="br-young")
    expect(fresh.locator("td.field-sweep_would")).to_contain_text("Not a candidate: not stale yet")
    expect(results.locator("thead th.column-created a")).to_have_count(1)  # created-at sorts
    assert_no_sideways_scroll(page)
    if width == LAPTOP:
        # Fits with the navigation sidebar open: the table needs no scrolling of its own.
        expect(page.locator("#nav-sidebar")).to_be_visible()
        assert page.evaluate(
            "(() => { const r = document.querySelector('#changelist .results');"
            " return r.scrollWidth <= r.clientWidth; })()"
        )
    screenshot(page, f"{shot}-01-orders", readme="orders-list" if width == LAPTOP else "orders-list-phone")

    # Tick two, choose the action, Go.
    page.check(f'#result_list input.action-select[value="{first.pk}"]')
    page.check(f'#result_list input.action-select[value="{second.pk}"]')
    page.select_option("#changelist-form select[name=action]", label="Recover selected stale orders")
    page.click('#changelist-form button[name="index"]')

    # The preview: what happens first, with the orders' facts; gates and settings folded below.
    decisions = page.locator("#recovery-decisions tbody tr")
    expect(decisions).to_have_count(2)
    for order, symbol in ((first, "AAPL"), (second, "MSFT")):
        line = decisions.filter(has_text=order.client_order_id)
        expect(line).to_contain_text(symbol)
        expect(line.locator("td.fate-cell")).to_contain_text("Cancel and re-place")
        expect(line).to_contain_text("10 min")
    expect(page.locator("#recovery-summary")).to_contain_text("2 stale orders: 2 to cancel and re-place")
    expect(page.locator("#recovery-warnings")).to_contain_text("open_orders.json gives no data")
    expect(page.locator("#recovery-gates")).not_to_be_visible()  # folded
    expect(page.locator("#recovery-decisions")).not_to_contain_text(used_up.client_order_id)
    assert TradeOrder.objects.filter(status="NEW").count() == 4  # the preview wrote nothing
    assert_no_sideways_scroll(page)
    screenshot(page, f"{shot}-02-preview", readme="preview" if width == LAPTOP else None)
    page.click("#recovery-confirm")

    # Back on the list, its filter kept, with the outcome and a link to the sweep's audit.
    expect(page).to_have_url(re.compile(re.escape(filtered) + "$"))
    message = page.locator("ul.messagelist li.success")
    expect(message).to_contain_text("cancelled 2, replaced 2")
    assert_no_sideways_scroll(page)
    message.get_by_role("link", name="See its audit entries").click()

    # The sweep's entries: its row, two cancels naming their replacements, two replacements.
    sweep = AuditLog.objects.get(action=ACTION_SWEEP)
    expect(page).to_have_url(re.compile(rf"\?sweep={sweep.pk}$"))
    entries = page.locator("#result_list tbody tr")
    expect(entries).to_have_count(5)
    replacement = TradeOrder.objects.get(client_order_id="br-1-r1")
    cancel_row = entries.filter(has_text=f"#{first.pk} br-1 cancelled, replaced by")
    expect(cancel_row).to_contain_text(f"#{replacement.pk} br-1-r1")
    assert_no_sideways_scroll(page)
    cancel_row.locator("th a").click()

    # The cancel's page links to the replacement and to the sweep's row.
    cancel = AuditLog.objects.get(action=ACTION_CANCEL, resource_id=first.pk)
    expect(page).to_have_url(
        re.compile(re.escape(reverse("admin:recovery_auditlog_change", args=[cancel.pk])))
    )
    links = page.locator("table.audit-links")
    expect(links.get_by_role("link", name=f"#{replacement.pk} br-1-r1")).to_be_visible()
    links.get_by_role("link", name=re.compile(rf"audit entry #{sweep.pk}")).click()

    # The sweep's page: its decisions first, in words; the raw JSON folded.
    table = page.locator("table.sweep-decisions")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").filter(has_text="br-2")).to_contain_text("Cancel and re-place")
    expect(page.locator("pre.audit-detail")).not_to_be_visible()
    assert_no_sideways_scroll(page)
    screenshot(page, f"{shot}-03-sweep-audit")
    table.get_by_role("link", name=f"#{replacement.pk} br-1-r1").click()

    # The replacement's page links back to its origin; the origin's to its replacement.
    expect(page.locator(".field-chain_detail")).to_contain_text(f"attempt 1 of #{first.pk}")
    page.locator(".field-chain_detail").get_by_role("link", name=f"#{first.pk}").click()
    expect(page.locator(".field-chain_detail")).to_contain_text(f"replaced by #{replacement.pk}")
    expect(page.locator(".field-fate_detail")).to_contain_text("Auto-recovery cancelled it")
    assert_no_sideways_scroll(page)

    statuses = dict(TradeOrder.objects.values_list("client_order_id", "status"))
    assert statuses == {
        "br-1": "CANCELED",
        "br-2": "CANCELED",
        "br-3-r1": "NEW",
        "br-young": "NEW",
        "br-1-r1": "NEW",
        "br-2-r1": "NEW",
    }
    assert young.pk and sweep.actor == "admin:ops"


@pytest.mark.parametrize("width", WIDTHS)
def test_settings_refused_concurrent_save_shows_the_diff_keeps_the_input_and_saves_again(
    browser: Browser,
    live_server: LiveServer,
    pages: list[Page],
    committed_db: None,
    django_user_model: type[User],
    width: int,
) -> None:
    stored = {
        "allow_replace_outside_rth": True,
        "replace_same_trading_day_only": False,
        "max_auto_retries": 2,
        "new_timeout_seconds": 45,
        "blackout_windows": [{"start": "23:45", "end": "00:15"}],
        "unfilled_timeout_seconds": 300,  # the backend's own key: typed here, kept on save
        "note": "kept",  # a key nobody types: shown as JSON, kept on save
    }
    row = factories.TradeSettingsFactory(auto_recovery=stored, risk_defaults={"max_position_pct": 0.1})
    django_user_model.objects.create_superuser(username="admin", password=PASSWORD, email="a@example.com")
    change = reverse("admin:recovery_tradesettings_change", args=[row.pk])
    page = new_page(browser, live_server, width)
    pages.append(page)

    log_in(page, "admin", PASSWORD, next_url=change)
    expect(page.locator("#id_new_timeout_seconds")).to_have_value("45")
    expect(page.locator("#id_unfilled_timeout_seconds")).to_have_value("300")
    expect(page.locator("#id_unfilled_max_price_deviation_pct")).to_have_value("1.5")
    expect(page.locator("#id_other_keys")).to_have_value(re.compile(r'"note": "kept"'))
    assert_no_sideways_scroll(page)

    # A precise error first: an hour out of range.
    page.fill("#id_blackout_windows", "25:99-26:00")
    page.click('input[name="_save"]')
    expect(page.locator(".field-blackout_windows .errorlist")).to_contain_text(
        "hour 25 is out of range (00 to 23)"
    )
    page.fill("#id_blackout_windows", "23:45-00:15")

    # Meanwhile the backend writes the row; the user's save is refused, their input kept.
    page.fill("#id_new_timeout_seconds", "60")
    TradeSettings.objects.filter(pk=row.pk).update(
        auto_recovery={**stored, "max_auto_retries": 3, "unfilled_max_reprices": 4}
    )
    page.click('input[name="_save"]')
    errors = page.locator("ul.errorlist.nonfield")
    expect(errors).to_contain_text("changed by someone else")
    expect(errors).to_contain_text("max_auto_retries: then 2, now 3")
    expect(errors).to_contain_text("unfilled_max_reprices: then 0, now 4")
    expect(page.locator("#id_new_timeout_seconds")).to_have_value("60")  # the user's input
    expect(page.locator("#id_max_auto_retries")).to_have_value("3")  # untouched: the stored value
    assert TradeSettings.objects.get(pk=row.pk).auto_recovery["new_timeout_seconds"] == 45
    assert_no_sideways_scroll(page)
    screenshot(page, f"{width}-04-settings-refused", readme="settings-refused" if width == LAPTOP else None)

    # Having seen the changes, save again: it goes through, over them.
    page.click('input[name="_save"]')
    expect(page.locator("ul.messagelist li.success")).to_contain_text("was changed successfully")
    saved = TradeSettings.objects.get(pk=row.pk).auto_recovery
    assert (saved["new_timeout_seconds"], saved["max_auto_retries"], saved["unfilled_max_reprices"]) == (
        60,
        3,
        4,
    )
    assert saved["note"] == "kept" and saved["unfilled_timeout_seconds"] == 300
    audit = AuditLog.objects.get(action=ACTION_SETTINGS_UPDATE)
    changed = audit.detail["changed_keys"]
    assert audit.actor == "admin:admin" and "new_timeout_seconds" in changed
    assert "max_auto_retries" not in changed and "unfilled_max_reprices" not in changed  # theirs, kept

    # Saving again unchanged: one message, nothing written.
    page.goto(change)
    page.click('input[name="_save"]')
    expect(page.locator("ul.messagelist li")).to_have_count(1)
    expect(page.locator("ul.messagelist li")).to_contain_text("nothing was written")


@pytest.mark.parametrize("width", WIDTHS)
def test_status_page_at_a_glance(
    browser: Browser,
    live_server: LiveServer,
    pages: list[Page],
    committed_db: None,
    bridge: object,
    django_user_model: type[User],
    width: int,
) -> None:
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    stale_order("st-1")
    stale_order("st-part", filled_quantity=3)
    factories.SweepRunFactory(
        started_at=timezone.now() - dt.timedelta(minutes=3),
        duration_seconds=0.4,
        host="cron-1",
        scanned=5,
        cancelled=4,
        replaced=3,
        skipped=1,
    )
    viewer = django_user_model.objects.create_user(username="watch", password=PASSWORD, is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_tradeorder"))
    page = new_page(browser, live_server, width)
    pages.append(page)

    log_in(page, "watch", PASSWORD, next_url=reverse("admin:index"))
    page.get_by_role("link", name="Auto-recovery status").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("recovery_status")) + "$"))

    expect(page.locator("#recovery-last-cron")).to_contain_text("Last cron run (auto_recover): 3 min ago")
    expect(page.locator("#recovery-last-admin")).to_contain_text("Last admin run: no run recorded yet")
    expect(page.locator("#recovery-decisions")).to_contain_text("Cancel and re-place: nothing stops it")
    expect(page.locator("#recovery-not-candidates")).to_contain_text("1 older NEW order")
    gates = page.locator("#recovery-gates")
    expect(gates).to_contain_text("IB gateway")
    chart = page.locator("svg#recovery-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect")).to_have_count(48 * 3)
    expect(chart.locator("text.y-tick")).to_have_count(5)  # 0, 1, 2, 3, 4: a round axis to the peak
    box = chart.bounding_box()
    panel = page.locator("#recovery-chart-panel").bounding_box()
    assert box and panel
    if width == LAPTOP:
        assert abs(box["width"] - panel["width"]) <= 2  # scales to its container
    else:
        assert box["width"] >= panel["width"]  # a phone scrolls it inside its own box
    assert_no_sideways_scroll(page)
    screenshot(page, f"{width}-05-status")


def test_a_user_without_the_permission_gets_a_403_inside_the_admin(
    browser: Browser,
    live_server: LiveServer,
    pages: list[Page],
    committed_db: None,
    bridge: object,
    django_user_model: type[User],
) -> None:
    factories.TradeSettingsFactory(auto_recovery={})
    viewer = django_user_model.objects.create_user(username="viewer", password=PASSWORD, is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_tradeorder"))
    page = new_page(browser, live_server, PHONE)
    pages.append(page)
    log_in(page, "viewer", PASSWORD, next_url=reverse("admin:index"))

    response = page.goto(reverse("admin:recovery_tradeorder_sweep"))

    assert response is not None and response.status == 403
    expect(page.locator("#site-name")).to_be_visible()  # the admin's own layout
    expect(page.locator("#missing-permission")).to_contain_text("recovery.run_auto_recovery")
    assert_no_sideways_scroll(page)
