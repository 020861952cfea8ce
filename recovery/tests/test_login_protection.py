"""The admin login: locked out after repeated failures per username and address; sessions that end."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
WORKING_DAY = 8 * 3600


@pytest.fixture
def ops(django_user_model):  # noqa: ANN001, ANN201
    return django_user_model.objects.create_user(username="ops", password="right-password", is_staff=True)


def attempt(password: str, *, username: str = "ops", address: str = "10.0.0.1", **headers: str) -> int:
    client = Client(REMOTE_ADDR=address, **headers)
    return client.post(LOGIN, {"username": username, "password": password}).status_code


def test_five_failures_lock_that_username_from_that_address(ops) -> None:  # noqa: ANN001
    codes = [attempt("wrong") for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]  # the login form again, then the lockout
    assert attempt("right-password") == 429  # even the right password, from there
    assert attempt("right-password", address="10.0.0.2") == 302  # the same user elsewhere gets in
    assert attempt("wrong", username="someone-else") == 200  # another username from there is not locked


def test_the_unlock_command_lets_the_user_in_at_once(ops) -> None:  # noqa: ANN001
    for _ in range(5):
        attempt("wrong")
    assert attempt("right-password") == 429
    out = io.StringIO()
    call_command("axes_reset_username", "ops", stdout=out)
    assert "attempts removed" in out.getvalue()
    assert attempt("right-password") == 302


def test_the_lockout_ends_after_the_cool_off(ops, settings) -> None:  # noqa: ANN001
    from axes.models import AccessAttempt

    for _ in range(5):
        attempt("wrong")
    assert attempt("right-password") == 429
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - dt.timedelta(seconds=1)
    )
    assert attempt("right-password") == 302


def test_behind_the_proxy_the_real_ip_counts_not_a_forged_forwarded_for(ops, settings) -> None:  # noqa: ANN001
    settings.BEHIND_TLS_PROXY = True
    # Every request reaches gunicorn from nginx on 127.0.0.1; nginx sets X-Real-IP.
    for _ in range(5):
        attempt("wrong", address="127.0.0.1", HTTP_X_REAL_IP="203.0.113.7", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert attempt("right-password", address="127.0.0.1", HTTP_X_REAL_IP="203.0.113.7") == 429
    # A forged X-Forwarded-For does not get the attacker a fresh count ...
    assert (
        attempt(
            "right-password",
            address="127.0.0.1",
            HTTP_X_REAL_IP="203.0.113.7",
            HTTP_X_FORWARDED_FOR="9.9.9.9",
        )
        == 429
    )
    # ... and the office behind the same proxy is not locked out by the attacker.
    assert attempt("right-password", address="127.0.0.1", HTTP_X_REAL_IP="198.51.100.20") == 302


def test_a_session_lasts_a_working_day_and_ends_with_the_browser(client: Client, ops, settings) -> None:  # noqa: ANN001
    assert settings.SESSION_COOKIE_AGE == WORKING_DAY and settings.SESSION_EXPIRE_AT_BROWSER_CLOSE is True
    response = client.post(LOGIN, {"username": "ops", "password": "right-password"})
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["max-age"] == "" and cookie["expires"] == ""  # a browser-session cookie
    session = Session.objects.get()
    remaining = (session.expire_date - timezone.now()).total_seconds()
    assert WORKING_DAY - 60 < remaining <= WORKING_DAY
    assert client.get("/admin/").status_code == 200

    Session.objects.update(expire_date=timezone.now() - dt.timedelta(seconds=1))  # the day is over
    after = client.get("/admin/")
    assert after.status_code == 302 and after["Location"].startswith("/admin/login/")


def test_session_length_is_configurable(client: Client, ops, settings) -> None:  # noqa: ANN001
    settings.SESSION_COOKIE_AGE = 600
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = False
    response = client.post(LOGIN, {"username": "ops", "password": "right-password"})
    assert response.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 600
    remaining = (Session.objects.get().expire_date - timezone.now()).total_seconds()
    assert 540 < remaining <= 600


def test_the_lockout_page_is_in_the_admins_layout_and_says_how_long_it_lasts(ops, settings) -> None:  # noqa: ANN001
    for _ in range(4):
        attempt("wrong")
    client = Client(REMOTE_ADDR="10.0.0.1")
    response = client.post(LOGIN, {"username": "ops", "password": "wrong"})
    body = response.content.decode()

    assert response.status_code == 429
    assert '<meta name="viewport" content="width=device-width' in body  # not 980 px on a phone
    assert 'id="site-name"' in body  # the admin's header
    assert "Too many failed logins for <strong>ops</strong> from this address" in body
    assert "Try again in 30 minutes" in body
    assert "locked for 30 minutes from the last of them" in body
    assert "manage.py axes_reset_username ops" in body


def test_the_lockout_page_counts_down_from_the_last_failure(ops, settings) -> None:  # noqa: ANN001
    from axes.models import AccessAttempt

    for _ in range(5):
        attempt("wrong")
    settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a retry does not restart it
    AccessAttempt.objects.update(attempt_time=timezone.now() - dt.timedelta(minutes=12, seconds=30))
    response = Client(REMOTE_ADDR="10.0.0.1").post(LOGIN, {"username": "ops", "password": "right-password"})

    assert response.status_code == 429
    assert "Try again in 18 minutes" in response.content.decode()  # 17.5 rounded up
