"""auto_recover_health exit codes and /healthz/recovery status codes."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from recovery.db.models import SweepRun
from recovery.tests import factories
from recovery.tests.conftest import CLOCK

pytestmark = pytest.mark.django_db


def beat(outcome: str, *, seconds_ago: float, actor: str = "auto_recover", message: str = "") -> SweepRun:
    ended = CLOCK - dt.timedelta(seconds=seconds_ago)
    return factories.SweepRunFactory(
        started_at=ended - dt.timedelta(seconds=1),
        ended_at=ended,
        duration_seconds=1,
        actor=actor,
        host="h",
        outcome=outcome,
        message=message,
        sweep_id="s1",
    )


def health(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("auto_recover_health", *args, now=CLOCK, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_recent_ok_run_exits_0() -> None:
    beat("ok", seconds_ago=30)
    code, out = health("--max-age", "120")
    assert code == 0 and out.startswith("ok: last run 30s ago")


def test_too_old_exits_1() -> None:
    beat("ok", seconds_ago=300)
    code, out = health("--max-age", "120")
    assert code == 1 and out.startswith("stale: last run 300s ago, more than 120s")


@pytest.mark.parametrize("outcome", ["failed", "circuit_open", "could_not_run"])
def test_bad_endings_exit_1(outcome: str) -> None:
    beat(outcome, seconds_ago=10, message="why it ended so")
    code, out = health("--max-age", "120")
    assert code == 1 and f"ended {outcome}: why it ended so" in out


def test_lock_held_runs_prove_nothing() -> None:
    beat("ok", seconds_ago=600)
    beat("lock_held", seconds_ago=5)
    assert health("--max-age", "120")[0] == 1


def test_admin_runs_do_not_count_for_cron() -> None:
    beat("ok", seconds_ago=5, actor="admin:ops")
    code, out = health("--max-age", "120")
    assert code == 2 and "no auto_recover run recorded" in out


def test_no_run_at_all_cannot_tell_and_exits_2() -> None:
    assert health("--max-age", "60")[0] == 2


def test_json_output() -> None:
    beat("ok", seconds_ago=12)
    code, out = health("--max-age", "60", "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "ok" and data["age_seconds"] == 12.0
    assert data["last_outcome"] == "ok" and data["last_sweep_id"] == "s1"


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_bad_max_age_is_refused(value: str) -> None:
    with pytest.raises(CommandError, match="--max-age"):
        call_command("auto_recover_health", "--max-age", value)


def test_max_age_defaults_to_the_setting(settings) -> None:  # noqa: ANN001
    beat("ok", seconds_ago=150)
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 180
    code, out = health()
    assert code == 0 and out.startswith("ok: last run 150s ago")
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    code, out = health()
    assert code == 1 and out.startswith("stale: last run 150s ago, more than 120s")


# --- /healthz/recovery --------------------------------------------------------------


@pytest.fixture
def at_clock(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("recovery.views.timezone.now", lambda: CLOCK)


def test_health_url_200_when_healthy(client: Client, settings, at_clock) -> None:  # noqa: ANN001
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    beat("ok", seconds_ago=20)
    response = client.get("/healthz/recovery")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "age_seconds": 20.0}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize(("outcome", "ago", "status"), [("ok", 500, "stale"), ("failed", 5, "failing")])
def test_health_url_503_when_not(
    client: Client, settings, at_clock, outcome: str, ago: int, status: str
) -> None:  # noqa: ANN001
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    beat(outcome, seconds_ago=ago, message="secret detail of the failure")
    response = client.get("/healthz/recovery")
    assert response.status_code == 503
    assert response.json() == {"status": status, "age_seconds": float(ago)}
    assert b"secret" not in response.content  # nothing sensitive: no message, no host, no ids


def test_health_url_503_when_unknown_and_needs_no_login(client: Client) -> None:
    response = client.get("/healthz/recovery")
    assert response.status_code == 503 and response.json() == {"status": "unknown", "age_seconds": None}


def test_health_url_refuses_post(client: Client) -> None:
    assert client.post("/healthz/recovery").status_code == 405
