"""`manage.py check` reports a missing table, a missing column and a missing sweep index."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connections

from recovery.db.checks import (
    AUTO_RECOVERY_PATCH,
    HALTED_INDEX_PATCH,
    SWEEP_INDEX_PATCH,
    trading_schema_problems,
)
from recovery.db.routers import trading_alias
from recovery.db.schema import FIXTURES_DIR, PATCHES_DIR, run_sql_script
from recovery.tests.scratch import registered_connection, scratch_database


@pytest.fixture(autouse=True)
def _database_access(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN202
    # No django_db mark: the scratch databases live outside the test's transaction.
    with django_db_blocker.unblock():
        yield


def _ids(problems) -> list[str]:  # noqa: ANN001
    return sorted(p.id for p in problems)


def _reference_schema_without_patches(connection) -> None:  # noqa: ANN001
    if connection.vendor == "mysql":
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.mysql.sql").read_text())
    else:
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.sqlite.sql").read_text())
        run_sql_script(
            connection,
            "ALTER TABLE trade_settings DROP COLUMN auto_recovery;"
            "DROP INDEX idx_trade_orders_status_created_at;"
            "DROP INDEX idx_trade_orders_status_run_created_at;",
        )


@pytest.mark.django_db
def test_the_test_database_passes_the_check() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)
    assert "no issues" in out.getvalue()


def test_unpatched_schema_reports_the_column_with_its_patch_and_the_index() -> None:
    with scratch_database() as connection:
        _reference_schema_without_patches(connection)
        problems = trading_schema_problems(connection)
    assert _ids(problems) == ["recovery.E002", "recovery.W001", "recovery.W002"]
    column = next(p for p in problems if p.id == "recovery.E002")
    assert "trade_settings.auto_recovery" in column.msg
    assert column.hint == f"apply {AUTO_RECOVERY_PATCH}"
    index = next(p for p in problems if p.id == "recovery.W001")
    assert SWEEP_INDEX_PATCH in index.hint
    assert index.is_serious() is False and column.is_serious() is True
    halted = next(p for p in problems if p.id == "recovery.W002")
    assert HALTED_INDEX_PATCH in halted.hint and halted.is_serious() is False


def test_missing_table_is_an_error() -> None:
    with scratch_database() as connection:
        _reference_schema_without_patches(connection)
        run_sql_script(connection, "DROP TABLE audit_logs")
        problems = trading_schema_problems(connection)
    missing = [p for p in problems if p.id == "recovery.E001"]
    assert len(missing) == 1 and "'audit_logs'" in missing[0].msg


def test_empty_database_reports_every_table() -> None:
    with scratch_database() as connection:
        problems = trading_schema_problems(connection)
    assert _ids(problems) == ["recovery.E001"] * 6


@pytest.mark.mysql
def test_patched_reference_schema_has_no_problem() -> None:
    with scratch_database() as connection:
        _reference_schema_without_patches(connection)
        run_sql_script(connection, (PATCHES_DIR / "20260203_trade_settings_auto_recovery.sql").read_text())
        assert _ids(trading_schema_problems(connection)) == ["recovery.W001", "recovery.W002"]
        run_sql_script(
            connection,
            (PATCHES_DIR / "20260204_trade_orders_status_created_at_index.sql").read_text(),
        )
        assert _ids(trading_schema_problems(connection)) == ["recovery.W002"]
        run_sql_script(
            connection,
            (PATCHES_DIR / "20261130_trade_orders_status_run_created_at_index.sql").read_text(),
        )
        assert trading_schema_problems(connection) == []


@pytest.mark.mysql
def test_unreachable_database_is_reported_not_raised() -> None:
    settings_dict = {**connections[trading_alias()].settings_dict, "NAME": "test_does_not_exist_x"}
    with registered_connection("ghost", settings_dict) as connection:
        problems = trading_schema_problems(connection)
    assert _ids(problems) == ["recovery.E000"]
    assert "Unknown database" in problems[0].msg
