"""Health over the replacements: not picked up by the backend's sender, ended unsent, doubles.

Every check runs at CLOCK, passed as `now` (the command's stealth option, the URL's
patched clock): nothing here reads the wall clock.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recovery.db.audit import ACTION_REPLACE
from recovery.db.routers import trading_alias
from recovery.ops import replacements
from recovery.ops.health import health_get
from recovery.tests import factories
from recovery.tests.chains import SENT_RETRY, chain, second_replacement
from recovery.tests.conftest import CLOCK

pytestmark = pytest.mark.django_db


@pytest.fixture
def cron_ok() -> None:
    """A recent cron run that ended well: whatever fails below is the replacements'."""
    factories.SweepRunFactory(
        started_at=CLOCK - dt.timedelta(seconds=31), ended_at=CLOCK - dt.timedelta(seconds=30), sweep_id="s1"
    )


def health(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("auto_recover_health", "--max-age", "120", *args, now=CLOCK, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_replacements_on_their_way_are_healthy(cron_ok: None) -> None:
    chain("fine-1", age=40)  # waiting, within the grace
    chain("fine-2", age=600, status="SUBMITTED", params={"direct_retry": SENT_RETRY})
    chain("fine-3", age=600, status="FILLED", params={"direct_retry": SENT_RETRY}, filled_quantity=10.0)
    chain(
        "fine-4",
        age=600,
        params={"direct_retry": {"pending": True, "count": 2, "last_reason": "client_id_busy"}},
    )  # picked up, retrying: the backend is working on it
    code, out = health()
    assert (code, out.strip()) == (0, "ok: last run 30 seconds ago")
    assert health_get(now=CLOCK, max_age_seconds=120).replacements.looked_at == 4


def test_a_replacement_not_picked_up_120_s_after_it_was_written_is_an_incident(cron_ok: None) -> None:
    _, waiting = chain("late-1", age=119)
    assert health()[0] == 0
    _, late = chain("late-2", age=120)
    _, later = chain("late-3", age=3600)
    code, out = health()
    assert code == 1
    assert out.startswith(
        "incident: 2 replacements not picked up by the backend's sender 120 s after written "
        f"(is its direct-order loop running?): #{later.pk} written 1 h 00 min ago, "
        f"#{late.pk} written 2 min ago"
    )
    assert out.rstrip().endswith("(cron sweep ok: last run 30 seconds ago)")
    assert f"#{waiting.pk}" not in out


def test_one_still_new_is_counted_at_any_age_and_one_with_a_run_is_never_sent(cron_ok: None) -> None:
    _, old = chain("old-1", age=30 * 3600)  # older than the window: still NEW, still not sent
    _, run_order = chain("run-1", age=300, run_id=42)
    code, out = health()
    assert code == 1 and "2 replacements not picked up" in out
    assert f"#{old.pk} written 1 d 6 h ago" in out and f"#{run_order.pk} written 5 min ago" in out


@pytest.mark.parametrize(
    ("status", "params", "words"),
    [
        ("SKIPPED", {"direct_retry": SENT_RETRY}, "skipped by the backend: never sent"),
        (
            "REJECTED",
            {"direct_retry": SENT_RETRY, "submit_command": {"pending": False, "status": "not_connected"}},
            "rejected by the bridge: not_connected",
        ),
        (
            "REJECTED",
            {"direct_retry": SENT_RETRY, "reason": "risk_blocked"},
            "rejected by the backend: risk_blocked",
        ),
    ],
    ids=["skipped", "rejected-by-the-bridge", "rejected-by-the-backend"],
)
def test_a_replacement_that_ended_without_reaching_the_broker_is_an_incident_for_24_h(
    cron_ok: None, status: str, params: dict, words: str
) -> None:
    _, ended = chain("end-1", status=status, params=params, age=23 * 3600)
    code, out = health()
    assert code == 1
    assert out.startswith(
        "incident: 1 replacement written in the last 24 h ended without reaching the broker "
        f"(the order it replaced stays cancelled): #{ended.pk} {words}"
    )
    ended.created_at = CLOCK - dt.timedelta(hours=24, seconds=1)
    ended.save()
    assert health()[0] == 0  # out of the window: it clears by itself


def test_ended_after_a_fill_or_retried_by_the_backend_is_no_incident(cron_ok: None) -> None:
    chain("fill-1", status="REJECTED", params={"direct_retry": SENT_RETRY}, filled_quantity=3.0, age=600)
    chain("fill-2", status="SKIPPED", params={"direct_retry": SENT_RETRY}, filled_quantity=1.0, age=600)
    retry = {"pending": True, "count": 1, "last_reason": "auto_retry_error"}
    chain("retry-1", status="REJECTED", params={"direct_retry": retry}, age=600)
    chain("ours-1", status="CANCELED", params={"auto_recovery_cancel": True}, age=600)
    assert health() == (0, "ok: last run 30 seconds ago\n")


def test_a_double_is_an_incident_naming_both_orders(cron_ok: None) -> None:
    first, second = chain("dbl-1", original_status="SUBMITTED", original={"ib_order_id": 555}, age=600)
    chain("dbl-2", original_status="FILLED", original={"filled_quantity": 10.0}, status="CANCELED", age=600)
    code, out = health()
    assert code == 1
    assert out.startswith(
        "incident: 1 double (both the original and its replacement may be at the broker): "
        f"#{first.pk} SUBMITTED again (broker id 555) beside its replacement #{second.pk} NEW; "
        f"1 replacement not picked up"
    )


def test_a_double_up_the_chain_and_only_within_the_window(cron_ok: None) -> None:
    root, r1 = chain("deep", original={"filled_quantity": 2.0}, status="CANCELED", age=7200)
    r2 = second_replacement(root, r1, status="SUBMITTED", created_at=CLOCK - dt.timedelta(seconds=600))
    factories.AuditLogFactory(action=ACTION_REPLACE, resource_id=r2.pk)
    code, out = health()
    assert code == 1 and f"#{root.pk} CANCELED (filled 2) beside its replacement #{r2.pk} SUBMITTED" in out
    r2.created_at = CLOCK - dt.timedelta(hours=25)
    r2.save()
    assert health()[0] == 0


def test_a_replacement_still_new_is_a_double_at_any_age(cron_ok: None) -> None:
    """Not sent after 30 h, but the backend's loop may still send it beside the revived original."""
    first, second = chain(
        "old-dbl", original_status="FILLED", original={"filled_quantity": 10.0}, age=30 * 3600
    )
    code, out = health()
    assert (
        code == 1 and f"#{first.pk} FILLED again (filled 10) beside its replacement #{second.pk} NEW" in out
    )
    assert f"#{second.pk} written 1 d 6 h ago" in out  # and not picked up


def test_only_replacements_this_project_wrote_count(cron_ok: None) -> None:
    first, second = chain("ours", status="SKIPPED", params={"direct_retry": SENT_RETRY}, age=600)
    # The same row without our audit row: the backend's own retry orders look alike.
    factories.TradeOrderFactory(
        client_order_id="theirs-r1",
        status="SKIPPED",
        created_at=CLOCK - dt.timedelta(seconds=600),
        params={"auto_recovery": {"attempts": 1, "origin_order_id": first.pk}},
    )
    code, out = health()
    assert code == 1 and "1 replacement written in the last 24 h" in out and f"#{second.pk} " in out


def test_only_the_newest_replace_rows_are_read(cron_ok: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replacements, "LOOKED_AT", 2)
    _, oldest = chain("bound-1", age=900)  # not picked up: an incident, if it were read
    chain("bound-2", age=600, status="SUBMITTED", params={"direct_retry": SENT_RETRY})
    chain("bound-3", age=600, status="SUBMITTED", params={"direct_retry": SENT_RETRY})
    found = health_get(now=CLOCK, max_age_seconds=120)
    assert (found.status, found.replacements.looked_at) == ("ok", 2)
    monkeypatch.setattr(replacements, "LOOKED_AT", 3)
    assert f"#{oldest.pk} written 15 min ago" in health_get(now=CLOCK, max_age_seconds=120).message


def test_the_incident_list_names_five_and_counts_the_rest(cron_ok: None) -> None:
    made = [chain(f"many-{i}", age=600)[1] for i in range(7)]
    out = health()[1]
    assert "7 replacements not picked up" in out and out.count(" written 10 min ago") == 5
    assert " and 2 more" in out and f"#{made[0].pk} " not in out  # newest first


# --- with the heartbeat -------------------------------------------------------------------------


def test_a_stale_cron_keeps_its_status_and_adds_the_incident() -> None:
    factories.SweepRunFactory(
        started_at=CLOCK - dt.timedelta(seconds=301), ended_at=CLOCK - dt.timedelta(seconds=300)
    )
    _, late = chain("st-1", age=600)
    code, out = health()
    assert code == 1
    assert out.startswith(
        "stale: last run 5 minutes ago, past the limit of 2 minutes; incident: 1 replacement not picked up"
    )


def test_an_incident_wins_over_no_run_recorded() -> None:
    chain("nr-1", status="SKIPPED", params={"direct_retry": SENT_RETRY}, age=600)
    code, out = health()
    assert code == 1 and out.startswith("incident: 1 replacement written in the last 24 h")
    assert out.rstrip().endswith("(cron sweep unknown: no auto_recover run recorded yet)")


def test_json_names_the_orders(cron_ok: None) -> None:
    first, second = chain("js-1", original_status="FILLED", original={"filled_quantity": 10.0}, age=600)
    _, skipped = chain("js-2", status="SKIPPED", params={"direct_retry": SENT_RETRY}, age=600)
    code, out = health("--json")
    data = json.loads(out)
    assert code == 1 and data["status"] == "incident" and data["exit_code"] == 1
    assert data["replacements"] == {
        "looked_at": 2,
        "window_hours": 24.0,
        "not_picked_up": [second.pk],
        "ended_unsent": [skipped.pk],
        "doubles": [{"replacement": second.pk, "revived": [first.pk]}],
    }
    assert len(data["incidents"]) == 3 and data["incidents"][0].startswith("1 double")
    assert data["cron_message"] == "ok: last run 30 seconds ago"


def test_health_url_is_503_incident_without_naming_orders(
    client: Client, settings, monkeypatch, cron_ok
) -> None:  # noqa: ANN001
    monkeypatch.setattr("recovery.views.timezone.now", lambda: CLOCK)
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    _, skipped = chain("url-1", status="SKIPPED", params={"direct_retry": SENT_RETRY}, age=600)
    response = client.get("/healthz/recovery")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["age_seconds"], body["last_outcome"]) == ("incident", 30.0, "ok")
    assert b"url-1" not in response.content and str(skipped.pk).encode() not in response.content


def test_health_costs_the_same_queries_however_many_replacements(cron_ok: None) -> None:
    def queries() -> int:
        with (
            CaptureQueriesContext(connections[trading_alias()]) as trading,
            CaptureQueriesContext(connections["default"]) as default,
        ):
            health_get(now=CLOCK, max_age_seconds=120)
        return len(trading) if trading_alias() == "default" else len(trading) + len(default)

    chain("cost-1", original_status="SUBMITTED", original={"ib_order_id": 1}, age=600)
    few = queries()
    for i in range(2, 40):
        chain(f"cost-{i}", age=600 + i, status="SUBMITTED", params={"direct_retry": SENT_RETRY})
    assert queries() == few
    # The heartbeat, the newest replace rows joined to their orders, their chains' earlier orders.
    assert few == 3


# --- the status page ------------------------------------------------------------------------------


def test_the_status_page_lists_each_incident_with_its_order(
    client: Client,
    django_user_model,
    bridge,
    monkeypatch,
    cron_ok,  # noqa: ANN001
) -> None:
    monkeypatch.setattr("recovery.admin.status.timezone.now", lambda: CLOCK)
    factories.TradeSettingsFactory(auto_recovery={})
    factories.IbSettingsFactory(api_mode="mock")
    user = django_user_model.objects.create_user(username="watch", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_tradeorder"))
    client.force_login(user)
    first, second = chain("sp-1", original_status="SUBMITTED", original={"ib_order_id": 7}, age=600)
    _, skipped = chain("sp-2", status="SKIPPED", params={"direct_retry": SENT_RETRY}, age=600)
    body = client.get(reverse("recovery_status")).content.decode()
    assert (
        'class="health-incident"' in body
        and "Health: Incident</strong> — cron sweep: last run 30 seconds ago; and the replacements" in body
    )
    incidents = body[body.index('id="recovery-incidents"') :]
    incidents = incidents[: incidents.index("</ul>")]
    change = "admin:recovery_tradeorder_change"
    assert incidents.index("<strong>Double:</strong>") < incidents.index("never sent")
    assert f'<a href="{reverse(change, args=[second.pk])}">#{second.pk}</a> Both the original' in incidents
    assert (
        f'<a href="{reverse(change, args=[skipped.pk])}">#{skipped.pk}</a> sp-2-r1: skipped by the backend'
        in incidents
    )
    assert "direct_retry.pending=false" in incidents  # the code, after the words
