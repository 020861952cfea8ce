"""The chain view and the replacements' health through a real browser (Debian's chromium).

At a laptop's width (1366 px, sidebar open) and a phone's (390 px): the orders list says for
each replacement whether the backend picked it up, a double heads both orders' pages, the
status page lists the incidents. Ages are relative to the moment the rows are written
(whatever the wall clock says), and asserted in minutes, never to the second.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect
from pytest_django.live_server_helper import LiveServer

from recovery.tests import factories
from recovery.tests.chains import SENT_RETRY, chain
from recovery.tests.test_browser import (  # noqa: F401 (browser, pages: fixtures)
    LAPTOP,
    PASSWORD,
    WIDTHS,
    assert_fully_visible,
    assert_no_sideways_scroll,
    browser,
    log_in,
    new_page,
    ops_user,
    pages,
    screenshot,
)

pytestmark = pytest.mark.browser


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def the_chains(now: dt.datetime) -> dict[str, Any]:
    """One chain per thing the backend may have done with a replacement, and a double."""
    made = {}
    made["waiting"] = chain("ch-wait", now=now, age=20)
    made["late"] = chain("ch-late", now=now, age=600)
    made["flight"] = chain(
        "ch-flight",
        now=now,
        age=600,
        params={
            "direct_retry": SENT_RETRY,
            "submit_command": {
                "pending": True,
                "command_id": "cmd-flight",
                "requested_at": iso(now - dt.timedelta(seconds=5)),
                "expires_at": iso(now + dt.timedelta(seconds=115)),
                "source": "leader_command",
            },
        },
    )
    made["retry"] = chain(
        "ch-retry",
        now=now,
        age=600,
        params={
            "direct_retry": {
                "pending": True,
                "count": 2,
                "last_reason": "client_id_busy",
                "next_retry_at": iso(now + dt.timedelta(minutes=10)),
            }
        },
    )
    made["sent"] = chain("ch-sent", now=now, age=600, status="SUBMITTED", params={"direct_retry": SENT_RETRY})
    made["rejected"] = chain(
        "ch-rej",
        now=now,
        age=600,
        status="REJECTED",
        params={"direct_retry": SENT_RETRY, "submit_command": {"pending": False, "status": "place_failed"}},
    )
    made["skipped"] = chain(
        "ch-skip", now=now, age=600, status="SKIPPED", params={"direct_retry": SENT_RETRY}
    )
    made["double"] = chain(
        "ch-double",
        now=now,
        age=600,
        original_status="SUBMITTED",
        original={"ib_order_id": 5551},
        status="SUBMITTED",
        params={"direct_retry": SENT_RETRY},
    )
    return made


@pytest.mark.parametrize("width", WIDTHS)
def test_the_chain_view_says_what_the_backend_did_with_each_replacement(
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
    factories.IbSettingsFactory(api_mode="mock")
    factories.SweepRunFactory(started_at=timezone.now() - dt.timedelta(seconds=30))
    ops_user(django_user_model)
    made = the_chains(timezone.now())
    changelist = reverse("admin:recovery_tradeorder_changelist")
    page = new_page(browser, live_server, width)
    pages.append(page)
    shot = f"chain-{width}"
    log_in(page, "ops", PASSWORD, next_url=changelist)

    # The list: each replacement's row says in words what the backend did with it.
    rows = page.locator("#result_list tbody tr")

    def row_of(client_order_id: str) -> Any:
        return rows.filter(has=page.locator("small.client-id", has_text=re.compile(rf"^{client_order_id}$")))

    def chain_cell(client_order_id: str) -> Any:
        return row_of(client_order_id).locator("td.field-chain")

    expect(chain_cell("ch-wait-r1")).to_contain_text(
        re.compile(r"waiting for the backend's sender \(written \d+ s ago\)")
    )
    expect(chain_cell("ch-late-r1")).to_contain_text(
        "not picked up by the backend's sender, written 10 min ago"
    )
    expect(chain_cell("ch-flight-r1")).to_contain_text("submit command sent, waiting for the bridge")
    expect(chain_cell("ch-retry-r1")).to_contain_text(
        # The date is shown when the retry falls on another day than the page's now: near
        # midnight UTC it does (this test runs on the wall clock).
        re.compile(r"the backend will retry at (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC")
    )
    expect(chain_cell("ch-sent-r1")).to_contain_text("sent: the broker has it (SUBMITTED)")
    expect(chain_cell("ch-rej-r1")).to_contain_text("rejected by the bridge: place_failed")
    expect(chain_cell("ch-skip-r1")).to_contain_text("skipped by the backend: never sent")
    expect(chain_cell("ch-skip")).to_contain_text("replaced by")
    original, replacement = made["double"]
    double = f"Double: #{original.pk} and #{replacement.pk} may both be at the broker"
    expect(chain_cell("ch-double-r1")).to_contain_text(double)
    expect(chain_cell("ch-double")).to_contain_text(double)
    expect(chain_cell("ch-double-r1")).to_contain_text(f"(#{original.pk} is now SUBMITTED)")
    # A phone shows each order as a card: the chain's words on screen, under the order's id.
    late = chain_cell("ch-late-r1")
    if width != LAPTOP:
        id_box, chain_box = (
            row_of("ch-late-r1").locator("th.field-order_ref").bounding_box(),
            late.bounding_box(),
        )
        assert id_box and chain_box and chain_box["y"] > id_box["y"]  # below the id, not beside it
    assert_fully_visible(page, late)
    assert_fully_visible(page, chain_cell("ch-double"))
    assert_no_sideways_scroll(page)
    if width == LAPTOP:
        assert page.evaluate(
            "(() => { const r = document.querySelector('#changelist .results');"
            " return r.scrollWidth <= r.clientWidth; })()"
        )
    screenshot(page, f"{shot}-01-orders")

    # The double's replacement: the incident heads the page, in words.
    page.goto(reverse("admin:recovery_tradeorder_change", args=[replacement.pk]))
    banner = page.locator("#recovery-double")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(
        "Incident: a double. Both the original and its replacement may be at the broker"
    )
    expect(banner).to_contain_text(f"#{original.pk} (ch-double) is SUBMITTED again (broker id 5551)")
    assert_no_sideways_scroll(page)
    screenshot(page, f"{shot}-02-double")

    # A replacement the backend has not picked up: its page says so first, the code after.
    _, late = made["late"]
    page.goto(reverse("admin:recovery_tradeorder_change", args=[late.pk]))
    pickup = page.locator(".field-backend_pickup")
    expect(pickup).to_contain_text("not picked up by the backend's sender, written 10 min ago")
    expect(pickup.locator("code.pickup-code")).to_contain_text("direct_retry.pending=true count=0")
    expect(page.locator("#recovery-double")).to_have_count(0)
    assert_no_sideways_scroll(page)
    screenshot(page, f"{shot}-03-not-picked-up")

    # The status page: health is an incident, each order named and linked, the double first.
    page.goto(reverse("recovery_status"))
    expect(page.locator("#recovery-health")).to_contain_text("Health: Incident — cron sweep: last run")
    incidents = page.locator("#recovery-incidents li")
    expect(incidents.first).to_contain_text("Double:")
    expect(page.locator("#recovery-incidents")).to_contain_text(
        "ch-skip-r1: skipped by the backend: never sent"
    )
    expect(page.locator("#recovery-incidents")).to_contain_text(
        "ch-rej-r1: rejected by the bridge: place_failed"
    )
    expect(page.locator("#recovery-incidents")).to_contain_text("ch-late-r1: not picked up")
    expect(incidents).to_have_count(4)
    assert_no_sideways_scroll(page)
    screenshot(page, f"{shot}-04-status")
