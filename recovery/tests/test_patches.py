"""Each deploy patch applied twice to a database built from the reference DDL."""

from __future__ import annotations

import pytest

from recovery.db.schema import FIXTURES_DIR, PATCHES_DIR, run_sql_script
from recovery.tests.scratch import scratch_database

pytestmark = pytest.mark.mysql


@pytest.fixture(autouse=True)
def _database_access(django_db_setup, django_db_blocker):  # noqa: ANN001, ANN202
    # No django_db mark: the scratch databases live outside the test's transaction.
    with django_db_blocker.unblock():
        yield


AUTO_RECOVERY = PATCHES_DIR / "20260203_trade_settings_auto_recovery.sql"
SWEEP_INDEX = PATCHES_DIR / "20260204_trade_orders_status_created_at_index.sql"
HALTED_INDEX = PATCHES_DIR / "20261130_trade_orders_status_run_created_at_index.sql"


def _fetch(connection, sql: str, params: list | None = None) -> list[tuple]:  # noqa: ANN001
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def _columns(connection, table: str) -> list[tuple]:  # noqa: ANN001
    return _fetch(
        connection,
        "SELECT COLUMN_NAME, IS_NULLABLE, DATA_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        [table],
    )


def _index_columns(connection, name: str) -> list[str]:  # noqa: ANN001
    rows = _fetch(
        connection,
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = 'trade_orders' AND INDEX_NAME = %s ORDER BY SEQ_IN_INDEX",
        [name],
    )
    return [row[0] for row in rows]


def test_auto_recovery_patch_twice() -> None:
    with scratch_database() as connection:
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.mysql.sql").read_text())
        _fetch(connection, "INSERT INTO trade_settings (risk_defaults) VALUES ('{}')")
        for _ in range(2):
            run_sql_script(connection, AUTO_RECOVERY.read_text())
        names = [c[0] for c in _columns(connection, "trade_settings")]
        assert names.index("auto_recovery") == names.index("execution_data_source") + 1
        assert names.count("auto_recovery") == 1
        column = next(c for c in _columns(connection, "trade_settings") if c[0] == "auto_recovery")
        assert column[1] == "YES"
        assert column[2] in {"json", "longtext"}  # MariaDB's JSON is LONGTEXT + json_valid
        assert _fetch(connection, "SELECT auto_recovery FROM trade_settings") == [(None,)]
        ledger = _fetch(connection, "SELECT version, applied_by FROM schema_migrations ORDER BY id")
        assert [row[0] for row in ledger] == ["20260203_trade_settings_auto_recovery"]
        assert ledger[0][1]
        with pytest.raises(Exception, match="CONSTRAINT|json|JSON"):
            _fetch(connection, "UPDATE trade_settings SET auto_recovery = 'not json'")


def test_sweep_index_patch_twice() -> None:
    with scratch_database() as connection:
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.mysql.sql").read_text())
        for _ in range(2):
            run_sql_script(connection, SWEEP_INDEX.read_text())
        assert _index_columns(connection, "idx_trade_orders_status_created_at") == ["status", "created_at"]
        ledger = _fetch(connection, "SELECT version FROM schema_migrations")
        assert ledger == [("20260204_trade_orders_status_created_at_index",)]
        plan = _fetch(
            connection,
            "EXPLAIN SELECT id FROM trade_orders FORCE INDEX (idx_trade_orders_status_created_at) "
            "WHERE status = 'NEW' AND created_at <= NOW() ORDER BY created_at LIMIT 10",
        )
        assert "idx_trade_orders_status_created_at" in str(plan)


def test_patches_work_without_a_schema_migrations_table() -> None:
    with scratch_database() as connection:
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.mysql.sql").read_text())
        run_sql_script(connection, "DROP TABLE schema_migrations")
        for _ in range(2):
            run_sql_script(connection, AUTO_RECOVERY.read_text())
            run_sql_script(connection, SWEEP_INDEX.read_text())
        names = [c[0] for c in _columns(connection, "trade_settings")]
        assert "auto_recovery" in names
        tables = _fetch(connection, "SHOW TABLES LIKE 'schema_migrations'")
        assert tables == []


def test_halted_runs_index_patch_twice() -> None:
    with scratch_database() as connection:
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.mysql.sql").read_text())
        for _ in range(2):
            run_sql_script(connection, HALTED_INDEX.read_text())
        assert _index_columns(connection, "idx_trade_orders_status_run_created_at") == [
            "status",
            "run_id",
            "created_at",
        ]
        ledger = _fetch(connection, "SELECT version FROM schema_migrations ORDER BY id")
        assert ledger == [("20261130_trade_orders_status_run_created_at_index",)]
