"""System checks: does the database hold the trading schema tradeops needs?

Runs with every `manage.py check` (and before every command that checks), on the
database alias of the trading models. Missing tables or columns are errors (the sweep
would fail); a missing sweep index is a warning (the sweep works, but scans).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import apps
from django.core import checks
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from recovery.db.clock import database_now_offset
from recovery.db.routers import database_label, is_trading_model, trading_alias
from recovery.exceptions import SchemaNotReady, error_line

AUTO_RECOVERY_PATCH = "deploy/mysql/patches/20260203_trade_settings_auto_recovery.sql"
SWEEP_INDEX_PATCH = "deploy/mysql/patches/20260204_trade_orders_status_created_at_index.sql"
SWEEP_INDEX_COLUMNS = ["status", "created_at"]
HALTED_INDEX_PATCH = "deploy/mysql/patches/20261130_trade_orders_status_run_created_at_index.sql"
HALTED_INDEX_COLUMNS = ["status", "run_id", "created_at"]

MSG_UNREACHABLE = "cannot read the trading schema in {database}: {error}"
MSG_MISSING_TABLE = "trading table {table!r} is missing in {database}"
MSG_MISSING_COLUMN = "column {table}.{column} is missing in {database}"
MSG_MISSING_INDEX = "trade_orders has no (status, created_at) index in {database}"
HINT_TABLE = (
    "point DATABASE_URL (or TRADING_DATABASE_URL) at the trading backend's database; "
    "for a demo or test database load fixtures/trading_schema.*.sql"
)
HINT_COLUMN = (
    "the trading schema is older than tradeops expects; compare with fixtures/trading_schema.mysql.sql"
)
HINT_AUTO_RECOVERY = f"apply {AUTO_RECOVERY_PATCH}"
HINT_INDEX = f"the sweep would scan the whole table every run: apply {SWEEP_INDEX_PATCH}"
MSG_MISSING_HALTED_INDEX = "trade_orders has no (status, run_id, created_at) index in {database}"
HINT_HALTED_INDEX = (
    f"on a day a project is halted, every run would read each of its stale orders: apply {HALTED_INDEX_PATCH}"
)


def _trading_models() -> list[Any]:
    return [m for m in apps.get_app_config("recovery").get_models() if is_trading_model(m)]


def _index_kinds(indexes: Iterable[list[str]]) -> set[str]:
    """Which of the indexes the sweep asks for are among `indexes` (column lists)."""
    kinds = set()
    for columns in indexes:
        if columns[:2] == SWEEP_INDEX_COLUMNS:
            kinds.add("sweep")
        if columns[:3] == HALTED_INDEX_COLUMNS:
            kinds.add("halted")
    return kinds


# MySQL/MariaDB: the whole schema in two information_schema queries. Cron runs this check
# every minute; Django's introspection would spend about thirty queries on it.
MYSQL_COLUMNS_SQL = (
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({tables})"
)
MYSQL_INDEXES_SQL = (
    "SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'trade_orders' GROUP BY INDEX_NAME"
)


def _schema_read(connection: BaseDatabaseWrapper, tables: list[str]) -> tuple[dict[str, set[str]], set[str]]:
    """{table: its columns} for the tables that exist, and which sweep indexes exist."""
    columns: dict[str, set[str]] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(MYSQL_COLUMNS_SQL.format(tables=", ".join(["%s"] * len(tables))), tables)
            for table, column in cursor.fetchall():
                columns.setdefault(table, set()).add(column)
            cursor.execute(MYSQL_INDEXES_SQL)
            return columns, _index_kinds(str(row[0]).split(",") for row in cursor.fetchall())
        introspection = connection.introspection
        existing = set(introspection.table_names(cursor))
        for table in tables:
            if table in existing:
                columns[table] = {c.name for c in introspection.get_table_description(cursor, table)}
        if "trade_orders" not in existing:
            return columns, set()
        constraints = introspection.get_constraints(cursor, "trade_orders").values()
        return columns, _index_kinds(list(c.get("columns") or []) for c in constraints if c.get("index"))


MSG_NOW_NOT_UTC = (
    "the server's NOW() for {database} is {offset} UTC: "
    "the trading schema's DEFAULT CURRENT_TIMESTAMP writes local times that the sweep reads as UTC"
)
HINT_NOW_NOT_UTC = (
    "set default_time_zone = '+00:00' in the server's configuration (or SET GLOBAL time_zone = '+00:00'); "
    "until then an order written with the default created_at looks hours older or younger than it is"
)


def trading_schema_problems(connection: BaseDatabaseWrapper) -> list[checks.CheckMessage]:
    """Every missing table, column and index of the trading schema on `connection`."""
    database = database_label(connection.alias)
    models = _trading_models()
    try:
        columns, indexed = _schema_read(connection, [m._meta.db_table for m in models])
    except DatabaseError as exc:
        error = error_line(exc)
        return [
            checks.Error(
                MSG_UNREACHABLE.format(database=database, error=error),
                hint="check DATABASE_URL / TRADING_DATABASE_URL and that the server is up",
                id="recovery.E000",
            )
        ]
    problems: list[checks.CheckMessage] = []
    for model in models:
        table = model._meta.db_table
        if table not in columns:
            problems.append(
                checks.Error(
                    MSG_MISSING_TABLE.format(table=table, database=database),
                    hint=HINT_TABLE,
                    id="recovery.E001",
                )
            )
            continue
        for field in model._meta.concrete_fields:
            if field.column not in columns[table]:
                is_patch = (table, field.column) == ("trade_settings", "auto_recovery")
                problems.append(
                    checks.Error(
                        MSG_MISSING_COLUMN.format(table=table, column=field.column, database=database),
                        hint=HINT_AUTO_RECOVERY if is_patch else HINT_COLUMN,
                        id="recovery.E002",
                    )
                )
    if "trade_orders" in columns and "sweep" not in indexed:
        problems.append(
            checks.Warning(MSG_MISSING_INDEX.format(database=database), hint=HINT_INDEX, id="recovery.W001")
        )
    if "trade_orders" in columns and "halted" not in indexed:
        problems.append(
            checks.Warning(
                MSG_MISSING_HALTED_INDEX.format(database=database), hint=HINT_HALTED_INDEX, id="recovery.W002"
            )
        )
    return problems


@checks.register("tradeops")
def trading_schema_check(
    app_configs: Iterable[Any] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[checks.CheckMessage]:
    alias = trading_alias()
    # migrate and the test runner name the databases they touch; plain `check` names none.
    if databases is not None and alias not in databases:
        return []
    problems = trading_schema_problems(connections[alias])
    if not any(p.is_serious() for p in problems):
        problems += server_clock_problems(connections[alias])
    return problems


def server_clock_problems(connection: BaseDatabaseWrapper) -> list[checks.CheckMessage]:
    """A warning when a fresh session's NOW() is not UTC (checked by `check`, not every run)."""
    if connection.vendor != "mysql":
        return []  # SQLite has no server clock: CURRENT_TIMESTAMP is UTC there
    try:
        offset = database_now_offset(using=connection.alias)
    except DatabaseError:
        return []  # trading_schema_problems has said the server cannot be read
    if offset == 0:
        return []
    shown = "of an unknown offset from" if offset is None else f"{offset / 3600:+g} h from"
    message = MSG_NOW_NOT_UTC.format(database=database_label(connection.alias), offset=shown)
    return [checks.Warning(message, hint=HINT_NOW_NOT_UTC, id="recovery.W003")]


def trading_schema_assert(*, using: str) -> list[checks.CheckMessage]:
    """Raise SchemaNotReady (one line, with the fix) on errors; return the warnings."""
    problems = trading_schema_problems(connections[using])
    errors = [p for p in problems if p.is_serious()]
    if errors:
        raise SchemaNotReady("; ".join(f"{p.msg} ({p.hint})" for p in errors))
    return problems
