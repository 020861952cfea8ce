"""Loading the reference DDL: the statement splitter and the no-production guard."""

from __future__ import annotations

import pytest
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from recovery.db.routers import trading_alias
from recovery.db.schema import (
    FIXTURES_DIR,
    ensure_scratch_database,
    patch_files,
    sql_statements,
)
from recovery.exceptions import UnsafeSchemaOperation


def test_split_keeps_semicolons_inside_quotes_and_drops_comments() -> None:
    text = "-- a comment; with a semicolon\nSELECT 'a;b';\nSET @x := \"c;d\"; -- trailing\nDO 0"
    assert sql_statements(text) == ["SELECT 'a;b'", 'SET @x := "c;d"', "DO 0"]


def test_split_handles_escaped_quotes() -> None:
    assert sql_statements(r"SELECT 'it\'s; fine'; SELECT 2;") == [r"SELECT 'it\'s; fine'", "SELECT 2"]


@pytest.mark.parametrize("name", ["trading_schema.mysql.sql", "trading_schema.sqlite.sql"])
def test_reference_ddl_has_every_table(name: str) -> None:
    statements = sql_statements((FIXTURES_DIR / name).read_text())
    created = [s.split()[2] for s in statements if s.upper().startswith("CREATE TABLE")]
    assert sorted(created) == sorted(
        [
            "trade_runs",
            "trade_orders",
            "trade_settings",
            "audit_logs",
            "trade_guard_state",
            "ib_settings",
            "schema_migrations",
        ]
    )


def test_patches_are_found_in_order() -> None:
    names = [p.name for p in patch_files()]
    assert names == [
        "20260203_trade_settings_auto_recovery.sql",
        "20260204_trade_orders_status_created_at_index.sql",
        "20261130_trade_orders_status_run_created_at_index.sql",
    ]


class _FakeWrapper:
    def __init__(self, vendor: str, name: str) -> None:
        self.vendor = vendor
        self.settings_dict = {"NAME": name}


@pytest.mark.parametrize("name", ["trading", "prod_trading", "tradeops"])
def test_ddl_is_refused_on_a_production_mysql_database(name: str) -> None:
    with pytest.raises(UnsafeSchemaOperation, match="refusing to run DDL"):
        ensure_scratch_database(_FakeWrapper("mysql", name))  # type: ignore[arg-type]


def test_ddl_on_sqlite_needs_a_test_file_or_the_demo() -> None:
    real = _FakeWrapper("sqlite", "/srv/tradeops/var/tradeops.sqlite3")
    with pytest.raises(UnsafeSchemaOperation):
        ensure_scratch_database(real)  # type: ignore[arg-type]
    ensure_scratch_database(real, demo=True)  # type: ignore[arg-type]
    ensure_scratch_database(_FakeWrapper("sqlite", "/tmp/x/test_scratch.sqlite3"))  # type: ignore[arg-type]
    ensure_scratch_database(_FakeWrapper("sqlite", "file:memorydb_default?mode=memory&cache=shared"))  # type: ignore[arg-type]


def test_demo_flag_does_not_open_mysql() -> None:
    with pytest.raises(UnsafeSchemaOperation):
        ensure_scratch_database(_FakeWrapper("mysql", "trading"), demo=True)  # type: ignore[arg-type]


def test_ddl_is_refused_on_other_vendors() -> None:
    with pytest.raises(UnsafeSchemaOperation):
        ensure_scratch_database(_FakeWrapper("postgresql", "test_x"))  # type: ignore[arg-type]


@pytest.mark.django_db
def test_the_test_database_counts_as_scratch() -> None:
    connection: BaseDatabaseWrapper = connections[trading_alias()]
    ensure_scratch_database(connection)
