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
    assert code == 0 and out.startswith("ok: last run 30 seconds ago")


def test_too_old_exits_1() -> None:
    beat("ok", seconds_ago=300)
    code, out = health("--max-age", "120")
    assert code == 1 and out.startswith("stale: last run 5 minutes ago, past the limit of 2 minutes")


@pytest.mark.parametrize("outcome", ["failed", "connection_lost", "could_not_run"])
def test_bad_endings_exit_1(outcome: str) -> None:
    beat(outcome, seconds_ago=10, message="why it ended so")
    code, out = health("--max-age", "120")
    label = SweepRun.Outcome(outcome).label
    assert code == 1 and f"failing: last run 10 seconds ago: {label}: why it ended so" in out


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
    assert code == 0 and out.startswith("ok: last run 2 minutes ago")
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    code, out = health()
    assert code == 1 and out.startswith("stale: last run 2 minutes ago, past the limit of 2 minutes")


# --- /healthz/recovery --------------------------------------------------------------


@pytest.fixture
def at_clock(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr("recovery.views.timezone.now", lambda: CLOCK)


def test_health_url_200_when_healthy(client: Client, settings, at_clock) -> None:  # noqa: ANN001
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    beat("ok", seconds_ago=20)
    response = client.get("/healthz/recovery")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "age_seconds": 20.0,
        "last_outcome": "ok",
        "blocked_by": None,
        "degraded_seconds": None,
    }
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize(("outcome", "ago", "status"), [("ok", 500, "stale"), ("failed", 5, "failing")])
def test_health_url_503_when_not(
    client: Client, settings, at_clock, outcome: str, ago: int, status: str
) -> None:  # noqa: ANN001
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    beat(outcome, seconds_ago=ago, message="secret detail of the failure")
    response = client.get("/healthz/recovery")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["age_seconds"], body["last_outcome"]) == (status, float(ago), outcome)
    assert b"secret" not in response.content  # nothing sensitive: no message, no host, no ids


def test_health_url_503_when_unknown_and_needs_no_login(client: Client) -> None:
    response = client.get("/healthz/recovery")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unknown",
        "age_seconds": None,
        "last_outcome": None,
        "blocked_by": None,
        "degraded_seconds": None,
    }


def test_health_url_refuses_post(client: Client) -> None:
    assert client.post("/healthz/recovery").status_code == 405


# --- blocked, breaker open, over budget: an alarm after a few minutes, in words ------------

BRIDGE_MISSING = "the bridge root /srv/bridge does not exist on this host; nothing was changed"


def spell(outcome: str, *, from_minutes_ago: int, blocked_by: str = "", message: str = "") -> None:
    """One run a minute of `outcome`, from that many minutes ago up to 10 seconds ago."""
    for minutes in range(from_minutes_ago, -1, -1):
        run = beat(outcome, seconds_ago=minutes * 60 + 10, message=message)
        SweepRun.objects.filter(pk=run.pk).update(blocked_by=blocked_by)


def test_one_blocked_run_is_not_yet_an_alarm_but_says_so() -> None:
    beat("ok", seconds_ago=300)
    spell("blocked", from_minutes_ago=2, blocked_by="broker_evidence_unavailable", message=BRIDGE_MISSING)
    code, out = health("--max-age", "120")
    assert code == 0
    assert out.strip() == (
        "ok so far: blocked for 2 minutes (an alarm after 5 minutes): "
        f"{BRIDGE_MISSING}; last run 10 seconds ago"
    )


def test_runs_blocked_longer_than_the_setting_are_not_ok_and_say_why(settings) -> None:  # noqa: ANN001
    settings.RECOVERY_HEALTH_DEGRADED_MINUTES = 5
    beat("ok", seconds_ago=900)
    spell("blocked", from_minutes_ago=7, blocked_by="broker_evidence_unavailable", message=BRIDGE_MISSING)
    code, out = health("--max-age", "120")
    assert code == 1
    assert out.strip() == f"blocked for 7 minutes: {BRIDGE_MISSING}; last run 10 seconds ago"
    code, out = health("--max-age", "120", "--json")
    data = json.loads(out)
    assert (data["status"], data["last_outcome"], data["blocked_by"]) == (
        "failing",
        "blocked",
        "broker_evidence_unavailable",
    )
    assert data["degraded_seconds"] == 7 * 60 + 11  # from the first blocked run's start
    first_start = CLOCK - dt.timedelta(seconds=7 * 60 + 11)
    assert data["degraded_since"] == first_start.isoformat().replace("+00:00", "Z")
    assert data["last_outcome_label"] == "blocked: a sweep-wide gate kept it from acting"


def test_the_minutes_come_from_the_setting(settings) -> None:  # noqa: ANN001
    spell("over_budget", from_minutes_ago=2, message="the time budget ran out: 40 left")
    settings.RECOVERY_HEALTH_DEGRADED_MINUTES = 5
    assert health("--max-age", "120")[0] == 0
    settings.RECOVERY_HEALTH_DEGRADED_MINUTES = 1
    code, out = health("--max-age", "120")
    assert code == 1
    assert out.startswith("over its time budget for 2 minutes: the time budget ran out: 40 left")


def test_a_spell_mixes_the_three_and_an_ok_run_ends_it() -> None:
    spell("breaker_open", from_minutes_ago=9, message="circuit breaker open")
    spell("blocked", from_minutes_ago=3, blocked_by="ib_unreachable", message="the IB gateway is down")
    assert health("--max-age", "120")[0] == 1  # breaker then blocked: 9 minutes not ok
    beat("ok", seconds_ago=5)
    beat("breaker_open", seconds_ago=1, message="circuit breaker open")
    code, out = health("--max-age", "120")
    assert code == 0 and out.startswith("ok so far: circuit breaker open for 2 seconds")


def test_a_failure_is_not_ok_at_once() -> None:
    spell("blocked", from_minutes_ago=1, blocked_by="clock_skew", message="clocks")
    beat("failed", seconds_ago=2, message="1 order could not be written")
    code, out = health("--max-age", "120")
    assert code == 1
    assert out.startswith("failing: last run 2 seconds ago: failed: an order could not be written")


def test_a_demo_left_for_days_says_days_not_seconds() -> None:
    beat("ok", seconds_ago=4 * 86400 + 3600)
    code, out = health()
    assert code == 1 and out.strip() == "stale: last run 4 days ago, past the limit of 3 minutes"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (59.9, "59 seconds"),
        (60, "1 minute"),
        (420, "7 minutes"),
        (3600, "1 hour"),
        (7300, "2 hours"),
        (86400, "1 day"),
        (354188, "4 days"),
        (-5, "0 seconds"),
    ],
)
def test_durations_in_words(seconds: float, words: str) -> None:
    from recovery.ops.health import duration_words

    assert duration_words(seconds) == words


def test_health_url_503_after_minutes_blocked_names_the_gate_not_the_path(
    client: Client,
    settings,
    at_clock,  # noqa: ANN001
) -> None:
    settings.RECOVERY_HEALTH_MAX_AGE_SECONDS = 120
    spell("blocked", from_minutes_ago=6, blocked_by="broker_evidence_unavailable", message=BRIDGE_MISSING)
    response = client.get("/healthz/recovery")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["last_outcome"], body["blocked_by"]) == (
        "failing",
        "blocked",
        "broker_evidence_unavailable",
    )
    assert b"/srv/bridge" not in response.content
