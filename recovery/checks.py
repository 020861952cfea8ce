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

from recovery.routers import is_trading_model, trading_alias

AUTO_RECOVERY_PATCH = "deploy/mysql/patches/20260203_trade_settings_auto_recovery.sql"
SWEEP_INDEX_PATCH = "deploy/mysql/patches/20260204_trade_orders_status_created_at_index.sql"
SWEEP_INDEX_COLUMNS = ["status", "created_at"]

MSG_UNREACHABLE = "cannot read the trading schema on database {alias!r}: {error}"
MSG_MISSING_TABLE = "trading table {table!r} is missing on database {alias!r}"
MSG_MISSING_COLUMN = "column {table}.{column} is missing on database {alias!r}"
MSG_MISSING_INDEX = "trade_orders has no (status, created_at) index on database {alias!r}"
HINT_TABLE = (
    "point DATABASE_URL (or TRADING_DATABASE_URL) at the trading backend's database; "
    "for a demo or test database load fixtures/trading_schema.*.sql"
)
HINT_COLUMN = (
    "the trading schema is older than tradeops expects; compare with fixtures/trading_schema.mysql.sql"
)
HINT_AUTO_RECOVERY = f"apply {AUTO_RECOVERY_PATCH}"
HINT_INDEX = f"the sweep would scan the whole table every run: apply {SWEEP_INDEX_PATCH}"


def _trading_models() -> list[Any]:
    return [m for m in apps.get_app_config("recovery").get_models() if is_trading_model(m)]


def _has_sweep_index(constraints: dict[str, dict[str, Any]]) -> bool:
    return any(
        info.get("index") and list(info.get("columns") or [])[:2] == SWEEP_INDEX_COLUMNS
        for info in constraints.values()
    )


def trading_schema_problems(connection: BaseDatabaseWrapper) -> list[checks.CheckMessage]:
    """Every missing table, column and index of the trading schema on `connection`."""
    alias = connection.alias
    problems: list[checks.CheckMessage] = []
    try:
        with connection.cursor() as cursor:
            introspection = connection.introspection
            tables = set(introspection.table_names(cursor))
            for model in _trading_models():
                table = model._meta.db_table
                if table not in tables:
                    problems.append(
                        checks.Error(
                            MSG_MISSING_TABLE.format(table=table, alias=alias),
                            hint=HINT_TABLE,
                            id="recovery.E001",
                        )
                    )
                    continue
                columns = {c.name for c in introspection.get_table_description(cursor, table)}
                for field in model._meta.concrete_fields:
                    if field.column in columns:
                        continue
                    is_patch = (table, field.column) == ("trade_settings", "auto_recovery")
                    problems.append(
                        checks.Error(
                            MSG_MISSING_COLUMN.format(table=table, column=field.column, alias=alias),
                            hint=HINT_AUTO_RECOVERY if is_patch else HINT_COLUMN,
                            id="recovery.E002",
                        )
                    )
                if table == "trade_orders" and not _has_sweep_index(
                    introspection.get_constraints(cursor, table)
                ):
                    problems.append(
                        checks.Warning(
                            MSG_MISSING_INDEX.format(alias=alias), hint=HINT_INDEX, id="recovery.W001"
                        )
                    )
    except DatabaseError as exc:
        problems.append(
            checks.Error(
                MSG_UNREACHABLE.format(alias=alias, error=str(exc).splitlines()[0] if str(exc) else exc),
                hint="check DATABASE_URL / TRADING_DATABASE_URL and that the server is up",
                id="recovery.E000",
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
    return trading_schema_problems(connections[alias])


def trading_schema_assert(*, using: str) -> list[checks.CheckMessage]:
    """Raise SchemaNotReady (one line, with the fix) on errors; return the warnings."""
    from recovery.exceptions import SchemaNotReady

    problems = trading_schema_problems(connections[using])
    errors = [p for p in problems if p.is_serious()]
    if errors:
        raise SchemaNotReady("; ".join(f"{p.msg} ({p.hint})" for p in errors))
    return problems
