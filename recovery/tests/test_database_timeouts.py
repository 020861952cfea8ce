"""The database timeouts reach the MySQL driver's options, from the environment."""

from __future__ import annotations

import importlib

import pytest

import tradeops.settings


@pytest.fixture
def reload_settings(monkeypatch):  # noqa: ANN001, ANN201
    def load(**env: str):  # noqa: ANN202
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(tradeops.settings)

    monkeypatch.setenv("SECRET_KEY", "timeouts-test")
    monkeypatch.delenv("TRADING_DATABASE_URL", raising=False)
    yield load
    monkeypatch.undo()
    importlib.reload(tradeops.settings)  # the module as the real environment makes it


def test_defaults_on_mysql(reload_settings, monkeypatch) -> None:  # noqa: ANN001
    for name in (
        "DATABASE_CONNECT_TIMEOUT_SECONDS",
        "DATABASE_READ_TIMEOUT_SECONDS",
        "DATABASE_WRITE_TIMEOUT_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    module = reload_settings(DATABASE_URL="mysql://u@db.internal:3306/trading")
    options = module.DATABASES["default"]["OPTIONS"]
    assert (options["connect_timeout"], options["read_timeout"], options["write_timeout"]) == (5, 15, 15)


def test_set_from_the_environment_and_zero_means_none(reload_settings) -> None:  # noqa: ANN001
    module = reload_settings(
        DATABASE_URL="mysql://u@db.internal:3306/trading",
        TRADING_DATABASE_URL="mariadb://u@db2.internal:3306/trading",
        DATABASE_CONNECT_TIMEOUT_SECONDS="2",
        DATABASE_READ_TIMEOUT_SECONDS="0",
        DATABASE_WRITE_TIMEOUT_SECONDS="9",
    )
    for alias in ("default", "trading"):
        options = module.DATABASES[alias]["OPTIONS"]
        assert options["connect_timeout"] == 2 and options["write_timeout"] == 9
        assert "read_timeout" not in options


def test_sqlite_gets_none(reload_settings) -> None:  # noqa: ANN001
    module = reload_settings(DATABASE_URL="sqlite:////tmp/x.sqlite3")
    assert "read_timeout" not in module.DATABASES["default"].get("OPTIONS", {})
