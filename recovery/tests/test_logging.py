"""Logging (tradeops/settings.py LOGGING): a server error reaches stderr with its traceback,
in text or, with LOG_FORMAT=json, one JSON object a line; the recovery loggers keep writing.

The handlers are built from the real settings.LOGGING while stderr is a buffer, as a
process started by systemd has the journal as its stderr.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path

MSG_BOOM = "the view fell over: 42"


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(MSG_BOOM)


def fine(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [path("boom/", boom), path("fine/", fine)]


@contextlib.contextmanager
def stderr_of(config: dict[str, Any]) -> Iterator[io.StringIO]:
    """Logging configured from `config` with stderr a buffer; the settings' own again after."""
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):
        logging.config.dictConfig(config)
    try:
        yield buffer
    finally:
        logging.config.dictConfig(settings.LOGGING)


def json_config() -> dict[str, Any]:
    return {**settings.LOGGING, "formatters": {"line": settings.LOG_FORMATTERS["json"]}}


@pytest.fixture
def production(settings) -> Client:  # noqa: ANN001
    settings.DEBUG = False
    settings.ADMINS = []
    return Client(raise_request_exception=False)


@pytest.mark.urls("recovery.tests.test_logging")
def test_a_server_error_is_logged_to_stderr_with_its_traceback(production: Client) -> None:
    with stderr_of(settings.LOGGING) as stderr:
        response = production.get("/boom/")
    assert response.status_code == 500
    text = stderr.getvalue()
    assert " ERROR django.request Internal Server Error: /boom/" in text
    assert "Traceback (most recent call last)" in text and f"RuntimeError: {MSG_BOOM}" in text


@pytest.mark.urls("recovery.tests.test_logging")
def test_a_good_request_logs_nothing(production: Client) -> None:
    with stderr_of(settings.LOGGING) as stderr:
        assert production.get("/fine/").status_code == 200
        assert production.get("/nowhere/").status_code == 404  # a 404 is a warning, not an error
    assert stderr.getvalue() == ""


@pytest.mark.urls("recovery.tests.test_logging")
def test_json_format_is_one_object_a_line_with_the_traceback(production: Client) -> None:
    with stderr_of(json_config()) as stderr:
        production.get("/boom/")
        logging.getLogger("recovery.sweep").warning("sweep=%s circuit breaker still open", "abc")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2  # the traceback is inside the object, not lines of its own
    error, warning = (json.loads(line) for line in lines)
    assert (error["levelname"], error["name"], error["message"]) == (
        "ERROR",
        "django.request",
        "Internal Server Error: /boom/",
    )
    assert error["status_code"] == 500
    assert "Traceback (most recent call last)" in error["exc_info"] and MSG_BOOM in error["exc_info"]
    assert (warning["name"], warning["message"]) == ("recovery.sweep", "sweep=abc circuit breaker still open")


def test_the_recovery_loggers_still_write_to_stderr() -> None:
    with stderr_of(settings.LOGGING) as stderr:
        logging.getLogger("recovery.runs").error("auto_recover: blocked")
        logging.getLogger("recovery.sweep").debug("not shown at INFO")
    assert stderr.getvalue().splitlines()[-1].endswith(" ERROR recovery.runs auto_recover: blocked")
    assert "not shown" not in stderr.getvalue()
