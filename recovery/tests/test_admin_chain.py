"""The orders admin's chain view: a replacement's pickup by the backend, the original now, doubles.

Every page here is read at CLOCK (time-machine, not ticking): "written 40 s ago" is exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
from recovery.tests import factories
from recovery.tests.chains import SENT_RETRY, chain, second_replacement
from recovery.tests.conftest import CLOCK

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:recovery_tradeorder_changelist"


def change_url(order: TradeOrder) -> str:
    return reverse("admin:recovery_tradeorder_change", args=[order.pk])


@pytest.fixture
def ops(client: Client, django_user_model, bridge) -> Iterator[Client]:  # noqa: ANN001
    with time_machine.travel(CLOCK, tick=False):
        factories.TradeSettingsFactory(
            auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
        )
        factories.IbSettingsFactory(api_mode="mock")
        user = django_user_model.objects.create_user(username="ops", password="pw", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(codename__in=["view_tradeorder", "view_auditlog"])
        )
        client.force_login(user)
        yield client


def test_a_replacement_just_written_waits_for_the_backends_sender(ops: Client) -> None:
    original, replacement = chain("wait-1", age=40)
    page = ops.get(change_url(replacement)).content.decode()
    assert "waiting for the backend&#x27;s sender (written 40 s ago)" in page
    assert "direct_retry.pending=true count=0" in page  # the code, after the words
    assert f"(#{original.pk} is now CANCELED)" in page
    assert 'id="recovery-double"' not in page
    # The original's page: replaced by it, with how far the backend got.
    first = ops.get(change_url(original)).content.decode()
    assert f'replaced by <a href="{change_url(replacement)}">#{replacement.pk}</a>' in first
    assert "waiting for the backend&#x27;s sender" in first
    assert "picked up by the backend?" not in first  # not a replacement: no such field


@pytest.mark.parametrize(
    ("status", "params", "fields", "words", "incident"),
    [
        (
            "NEW",
            {},
            {},
            "not picked up by the backend&#x27;s sender, written 10 min ago",
            True,
        ),
        (
            "NEW",
            {
                "direct_retry": SENT_RETRY,
                "submit_command": {
                    "pending": True,
                    "command_id": "c-1",
                    "requested_at": "2026-11-24T15:59:55Z",
                    "expires_at": "2026-11-24T16:01:55Z",
                    "source": "leader_command",
                },
            },
            {},
            "picked up by the backend: submit command sent, waiting for the bridge (sent 5 s ago)",
            False,
        ),
        (
            "NEW",
            {
                "direct_retry": {
                    "pending": True,
                    "count": 1,
                    "last_reason": "client_id_busy",
                    "next_retry_at": "2026-11-24T16:00:20Z",
                }
            },
            {},
            "the backend will retry at 16:00:20 UTC (no free IB client id (client_id_busy))",
            False,
        ),
        ("SUBMITTED", {"direct_retry": SENT_RETRY}, {}, "sent: the broker has it (SUBMITTED)", False),
        (
            "REJECTED",
            {"direct_retry": SENT_RETRY, "submit_command": {"pending": False, "status": "place_failed"}},
            {},
            "rejected by the bridge: place_failed",
            True,
        ),
        ("SKIPPED", {"direct_retry": SENT_RETRY}, {}, "skipped by the backend: never sent", True),
    ],
    ids=["not-picked-up", "in-flight", "retry", "sent", "rejected", "skipped"],
)
def test_each_stage_in_words_on_the_list_and_the_order_page(
    ops: Client, status: str, params: dict, fields: dict, words: str, incident: bool
) -> None:
    original, replacement = chain("st-1", status=status, age=600, params=params, **fields)
    listed = ops.get(reverse(CHANGELIST)).content.decode()
    assert words in listed
    assert "&lt;br&gt;" not in listed  # the column's lines are lines, not markup shown as text
    page = ops.get(change_url(replacement)).content.decode()
    assert words in page
    assert ('pickup-incident">' in page) is incident
    row = ops.get(reverse(CHANGELIST)).context["cl"].result_list
    by_id = {o.pk: o for o in row}
    assert by_id[replacement.pk].chain.pickup.incident is incident
    assert by_id[original.pk].chain.replacement.id == replacement.pk


@pytest.mark.parametrize(
    "original",
    [
        {"status": "SUBMITTED", "ib_order_id": 555},
        {"status": "FILLED", "filled_quantity": 10.0},
        {"status": "CANCELED", "filled_quantity": 4.0},
        {"status": "CANCELED", "ib_order_id": 556},
        {"status": "PARTIALLY_FILLED", "filled_quantity": 1.0},
    ],
    ids=["submitted", "filled", "cancelled-with-fill", "cancelled-with-broker-id", "partly-filled"],
)
def test_an_original_that_came_back_to_life_beside_a_live_replacement_is_a_double(
    ops: Client, original: dict[str, Any]
) -> None:
    status = original.pop("status")
    first, second = chain("dbl-1", original_status=status, original=original)
    for order in (first, second):
        page = ops.get(change_url(order)).content.decode()
        assert 'id="recovery-double"' in page, order.client_order_id
        assert "Incident: a double." in page
        assert "Both the original and its replacement may be at the broker" in page
        assert f"#{first.pk} (dbl-1) is {status}" in page
    listed = ops.get(reverse(CHANGELIST)).content.decode()
    assert (
        listed.count(f"Double: #{first.pk} and #{second.pk} may both be at the broker") == 2
    )  # both rows, once each (a phone shows the chain column as a line of its card)
    replacement_page = ops.get(change_url(second)).content.decode()
    assert f"(#{first.pk} is now {status})" in replacement_page


@pytest.mark.parametrize("ended", ["REJECTED", "SKIPPED", "CANCELED"])
def test_no_double_once_the_replacement_ended_or_while_the_original_stays_cancelled(
    ops: Client, ended: str
) -> None:
    first, second = chain("nd-1", original_status="SUBMITTED", status=ended, original={"ib_order_id": 9})
    assert 'id="recovery-double"' not in ops.get(change_url(second)).content.decode()
    quiet_first, quiet_second = chain("nd-2")
    for order in (quiet_first, quiet_second):
        assert "Double" not in ops.get(change_url(order)).content.decode()
    assert "Double:" not in ops.get(reverse(CHANGELIST)).content.decode()


def test_a_double_further_up_the_chain_is_found_by_the_chains_client_ids(ops: Client) -> None:
    """root (filled after we cancelled it) -> r1 (cancelled by us, stale too) -> r2 (live)."""
    root, r1 = chain("deep", original={"filled_quantity": 10.0}, status="CANCELED")
    r1.params = {**r1.params, "auto_recovery_cancel": True}
    r1.save()
    r2 = second_replacement(
        root, r1, status="SUBMITTED", created_at=CLOCK - dt.timedelta(seconds=5), updated_at=CLOCK
    )
    page = ops.get(change_url(r2)).content.decode()
    assert 'id="recovery-double"' in page and f"#{root.pk} (deep) is CANCELED (filled 10)" in page
    assert f"(#{r1.pk} is now CANCELED)" in page
    assert "cancelled by auto-recovery: it went stale too" in ops.get(change_url(r1)).content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {"direct_retry": "pending"},
        {"direct_retry": {"pending": "false"}},
        {"direct_retry": None, "submit_command": "x"},
        {"direct_retry": {"pending": True, "count": "x", "next_retry_at": 5}},
    ],
    ids=["retry-text", "pending-false-text", "nulls", "bad-types"],
)
def test_odd_params_on_a_replacement_still_render_in_words(ops: Client, params: dict) -> None:
    _, replacement = chain("odd-1", params=params, age=300)
    page = ops.get(change_url(replacement))
    assert page.status_code == 200
    assert ops.get(reverse(CHANGELIST)).status_code == 200
    body = page.content.decode()
    assert 'class="pickup pickup-' in body


def test_a_page_of_chains_costs_the_same_queries_as_a_page_without(ops: Client) -> None:
    def queries() -> int:
        with (
            CaptureQueriesContext(connections[trading_alias()]) as trading,
            CaptureQueriesContext(connections["default"]) as default,
        ):
            assert ops.get(reverse(CHANGELIST)).status_code == 200
        return len(trading) if trading_alias() == "default" else len(trading) + len(default)

    for i in range(2):
        chain(f"q-{i}", original_status="SUBMITTED", original={"ib_order_id": i + 1})
    two = queries()
    for i in range(2, 30):
        chain(f"q-{i}")
    assert queries() == two
