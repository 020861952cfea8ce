"""Build the trading tables from the reference DDL — demo and test databases only.

In production the trading backend owns these tables and the DBA applies
deploy/mysql/patches/; nothing here may run there, hence the guard.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from recovery.db.routers import TRADING_TABLES
from recovery.exceptions import UnsafeSchemaOperation

FIXTURES_DIR = Path(settings.BASE_DIR) / "fixtures"
PATCHES_DIR = Path(settings.BASE_DIR) / "deploy" / "mysql" / "patches"
SCRATCH_PREFIX = "test_"
UNSAFE_DDL = (
    "refusing to run DDL on database {name!r} ({vendor}): the trading tables are built "
    "only in the SQLite demo database and in test databases named test_*"
)


def sql_statements(text: str) -> list[str]:
    """Split a SQL script into statements: `;` ends one unless it is quoted; `--` comments go."""
    statements: list[str] = []
    current: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            current.append(char)
            if char == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = len(text) if newline == -1 else newline
            continue
        elif char == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
        else:
            current.append(char)
        i += 1
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return statements


def patch_files() -> list[Path]:
    return sorted(PATCHES_DIR.glob("*.sql"))


def is_scratch_database(connection: BaseDatabaseWrapper) -> bool:
    """A test database: MySQL `test_*`, SQLite in memory or a file named `test_*`."""
    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "mysql":
        return name.startswith(SCRATCH_PREFIX)
    if connection.vendor == "sqlite":
        return name == ":memory:" or "mode=memory" in name or Path(name).name.startswith(SCRATCH_PREFIX)
    return False


def ensure_scratch_database(connection: BaseDatabaseWrapper, *, demo: bool = False) -> None:
    """Raise unless `connection` is a test database, or (demo=True) any SQLite database."""
    if is_scratch_database(connection) or (demo and connection.vendor == "sqlite"):
        return
    name = str(connection.settings_dict["NAME"])
    raise UnsafeSchemaOperation(UNSAFE_DDL.format(name=name, vendor=connection.vendor))


def run_sql_script(connection: BaseDatabaseWrapper, text: str, *, demo: bool = False) -> None:
    ensure_scratch_database(connection, demo=demo)
    with connection.cursor() as cursor:
        for statement in sql_statements(text):
            cursor.execute(statement)


def trading_schema_build(*, using: str, demo: bool = False) -> None:
    """Drop and recreate the trading tables from the reference DDL (and, on MySQL, the patches)."""
    connection = connections[using]
    ensure_scratch_database(connection, demo=demo)
    tables = sorted(TRADING_TABLES | {"schema_migrations"})
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)}")
    if connection.vendor == "mysql":
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.mysql.sql").read_text())
        for patch in patch_files():
            run_sql_script(connection, patch.read_text())
    else:
        run_sql_script(connection, (FIXTURES_DIR / "trading_schema.sqlite.sql").read_text(), demo=demo)


def trading_tables_empty(*, using: str) -> None:
    """Delete every row of the trading tables (transactional tests)."""
    connection = connections[using]
    ensure_scratch_database(connection)
    with connection.cursor() as cursor:
        for table in sorted(TRADING_TABLES):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
