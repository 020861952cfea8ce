"""A sweep started by a web request ends inside the web server's worker timeout (check recovery.E010)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from recovery.db.audit import ACTION_SWEEP
from recovery.db.models import AuditLog, SweepRun, TradeOrder
from recovery.ops.checks import closing_seconds, request_budget_check
from recovery.services import fresh as fresh_module
from recovery.services import sweep as sweep_module
from recovery.tests import factories
from recovery.tests.test_fresh_picture import HandClock


def test_the_defaults_pass() -> None:
    assert request_budget_check() == []
    # 50 s of budget, then at most 2 writes x 3 tries x 15 s, under gunicorn's 150 s.
    assert closing_seconds() == 90.0


@pytest.mark.parametrize(
    ("budget", "timeout"),
    [(50, 120), (61, 150), (0, 150), (-5, 150), (200, 150)],
)
def test_a_budget_that_does_not_fit_the_worker_timeout_is_an_error(budget: float, timeout: int) -> None:
    with override_settings(RECOVERY_API_MAX_SECONDS=budget, WEB_WORKER_TIMEOUT_SECONDS=timeout):
        problems = request_budget_check()
    assert [p.id for p in problems] == ["recovery.E010"]
    assert "WEB_WORKER_TIMEOUT_SECONDS" in problems[0].msg


def test_a_budget_that_fits_with_shorter_database_timeouts_passes() -> None:
    with override_settings(
        RECOVERY_API_MAX_SECONDS=50,
        WEB_WORKER_TIMEOUT_SECONDS=120,
        DATABASE_READ_TIMEOUT_SECONDS=10,
        DATABASE_WRITE_TIMEOUT_SECONDS=10,
    ):
        assert request_budget_check() == []  # 50 + 2 x 3 x 10 = 110 < 120


@pytest.mark.parametrize("which", ["DATABASE_READ_TIMEOUT_SECONDS", "DATABASE_WRITE_TIMEOUT_SECONDS"])
def test_no_database_timeout_means_no_bound_and_says_so(which: str) -> None:
    with override_settings(**{which: 0}):
        problems = request_budget_check()
    assert [p.id for p in problems] == ["recovery.W010"]


@pytest.mark.django_db(databases="__all__")
def test_manage_py_check_refuses_a_budget_over_the_worker_timeout() -> None:
    with override_settings(RECOVERY_API_MAX_SECONDS=140), pytest.raises(SystemCheckError, match="E010"):
        call_command("check")


# --- a request's sweep past its budget ends as an answer ---------------------------------


@pytest.fixture
def six_stale(bridge) -> list[int]:  # noqa: ANN001
    """Six stale orders; settings that re-place them at any hour (the request uses the real clock)."""
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    created = timezone.now() - dt.timedelta(minutes=10)
    return [
        factories.TradeOrderFactory(client_order_id=f"budget-{i}", created_at=created, updated_at=created).pk
        for i in range(6)
    ]


@pytest.fixture
def slow_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every order's write takes 5 s of the sweep's clock (a HandClock from the request's `now`)."""
    clocks: list[HandClock] = []

    def hand(start: dt.datetime) -> HandClock:
        clocks.append(HandClock(start))
        return clocks[-1]

    monkeypatch.setattr(sweep_module, "SweepClock", lambda *, start: hand(start))
    real = fresh_module.order_write

    def slow(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)
        clocks[-1].move(5)
        return outcome

    monkeypatch.setattr(fresh_module, "order_write", slow)


def assert_three_done_three_left(orders: list[int], *, actor: str, sweep_id: str | None = None) -> None:
    """Three recovered (their writes at 0, 5 and 10 s), three left NEW; the run written down."""
    still_new = TradeOrder.objects.filter(pk__in=orders, status="NEW").count()
    assert still_new == 3
    run = SweepRun.objects.get()
    assert (run.actor, run.cancelled, run.outcome) == (actor, 3, SweepRun.Outcome.OVER_BUDGET)
    summary = AuditLog.objects.get(action=ACTION_SWEEP)
    assert summary.detail["sweep_id"] == run.sweep_id == (sweep_id or run.sweep_id)
    assert summary.detail["left_for_next_run"] == 3


@override_settings(RECOVERY_API_MAX_SECONDS=12)
def test_an_api_sweep_past_its_budget_answers_what_it_left_and_writes_the_run_down(
    django_user_model, six_stale: list[int], slow_writes: None  # noqa: ANN001
) -> None:
    """Writes of 5 s, 12 s of budget: the answer is a 200 that says what was left."""
    user = django_user_model.objects.create_user(username="ops", password="pw", is_superuser=True)
    client = APIClient()
    client.force_authenticate(user)
    response = client.post("/api/recovery/sweep", {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cancelled"], body["left_for_next_run"]) == (3, 3)
    assert "time budget of 12 s spent" in body["out_of_time"]
    assert_three_done_three_left(six_stale, actor="api:ops", sweep_id=body["sweep_id"])


@override_settings(RECOVERY_API_MAX_SECONDS=12)
def test_the_admins_sweep_button_keeps_the_same_budget(
    client: Client, django_user_model, six_stale: list[int], slow_writes: None  # noqa: ANN001
) -> None:
    """The same budget, and the page says what was left (a warning, not a success)."""
    user = django_user_model.objects.create_superuser(username="alice", password="pw")
    client.force_login(user)
    response = client.post(reverse("admin:recovery_tradeorder_sweep"), {"confirm": "yes"}, follow=True)
    assert response.status_code == 200
    assert_three_done_three_left(six_stale, actor="admin:alice")
    [message] = [m for m in response.context["messages"]]
    assert message.level_tag == "warning"
    assert "Stopped early: 3 orders left NEW for the next run (time budget of 12 s spent" in str(message)
