"""MySQL errors by meaning: another writer won, the connection is gone, or a real failure."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError

from recovery.db.errors import ErrorKind, error_code, error_kind, error_text


@pytest.mark.parametrize("code", [1213, 1205, 1180])
def test_deadlocks_lock_waits_and_certification_failures_are_conflicts(code: int) -> None:
    assert error_kind(OperationalError(code, "x")) is ErrorKind.CONFLICT


@pytest.mark.parametrize("code", [2002, 2003, 2006, 2013, 2055, 1927, 1053, 4031, 1047])
def test_server_gone_lost_connection_cannot_connect_are_connection_errors(code: int) -> None:
    assert error_kind(OperationalError(code, "x")) is ErrorKind.CONNECTION


def test_a_closed_connection_is_a_connection_error() -> None:
    assert error_kind(InterfaceError(0, "")) is ErrorKind.CONNECTION
    assert error_kind(InterfaceError("connection already closed")) is ErrorKind.CONNECTION


@pytest.mark.parametrize(
    "exc",
    [
        IntegrityError(1062, "Duplicate entry"),
        OperationalError(1644, "x"),
        DatabaseError("no code"),
        DatabaseError(),
    ],
    ids=["unique-clash", "signal", "text-only", "bare"],
)
def test_everything_else_is_a_real_failure(exc: DatabaseError) -> None:
    assert error_kind(exc) is ErrorKind.OTHER


def test_the_code_is_the_first_argument_only_when_it_is_an_int() -> None:
    assert error_code(OperationalError(2006, "gone")) == 2006
    assert error_code(OperationalError("2006")) is None
    assert error_code(OperationalError(True, "x")) is None


def test_the_text_names_the_code_once() -> None:
    assert error_text(OperationalError(2013, "Lost connection to server during query")) == (
        "MySQL 2013: Lost connection to server during query"
    )
    assert error_text(InterfaceError("connection already closed\nmore")) == "connection already closed"
    assert error_text(DatabaseError()) == "DatabaseError"


def test_the_databases_that_failed_are_named(django_db_blocker, tmp_path) -> None:  # noqa: ANN001
    from django.db import connections

    from recovery.db.errors import failed_databases
    from recovery.tests.scratch import registered_connection

    down = {
        **connections["default"].settings_dict,
        "ENGINE": "django.db.backends.sqlite3",  # a file nobody can open: down on either engine
        "NAME": str(tmp_path / "no-such-folder" / "down.sqlite3"),
        "OPTIONS": {},
    }
    with django_db_blocker.unblock(), registered_connection("down", down) as connection:
        assert failed_databases() == "the database"  # nothing failed yet: no name to give
        with pytest.raises(OperationalError):
            connection.ensure_connection()
        assert failed_databases() == f"the trading database ({down['NAME']})"
