"""The bench database: created, built from the reference DDL and the patches, migrated, dropped.

Only a MariaDB/MySQL database named test_* is ever created or dropped here; the schema
guard in recovery.db.schema refuses any other name as well.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from typing import Any

import MySQLdb
from django.conf import settings
from django.core.management import call_command
from django.db import connections

from recovery.db.routers import trading_alias
from recovery.db.schema import SCRATCH_PREFIX, trading_schema_build

MSG_NOT_MYSQL = "the benchmark runs on MariaDB/MySQL only; DATABASE_URL points at {vendor}"
MSG_NOT_SCRATCH = "refusing to create or drop {name!r}: the bench database must be named test_*"
MSG_TWO_DATABASES = "unset TRADING_DATABASE_URL: the benchmark keeps every table in one database"
SQL_MODE = "SET sql_mode='STRICT_TRANS_TABLES'"


def bench_database_name() -> str:
    connection = connections[trading_alias()]
    if trading_alias() != "default":
        raise SystemExit(MSG_TWO_DATABASES)
    if connection.vendor != "mysql":
        raise SystemExit(MSG_NOT_MYSQL.format(vendor=connection.vendor))
    name = str(connection.settings_dict["NAME"])
    if not name.startswith(SCRATCH_PREFIX):
        raise SystemExit(MSG_NOT_SCRATCH.format(name=name))
    return name


def raw_connect(*, database: str | None) -> MySQLdb.Connection:
    """A plain MySQLdb connection with the same options as Django's (strict, utf8mb4)."""
    db = settings.DATABASES["default"]
    kwargs: dict[str, Any] = {
        "host": db.get("HOST") or "127.0.0.1",
        "port": int(db.get("PORT") or 3306),
        "user": db.get("USER") or "root",
        "password": db.get("PASSWORD") or "",
        "charset": "utf8mb4",
        "init_command": SQL_MODE,
    }
    if database is not None:
        kwargs["database"] = database
    return MySQLdb.connect(**kwargs)


def bench_database_create() -> str:
    """Drop and recreate test_* on the server, build the trading tables, migrate Django's own."""
    name = bench_database_name()
    server = raw_connect(database=None)
    try:
        with server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        server.close()
    trading_schema_build(using=trading_alias())
    call_command("migrate", verbosity=0, interactive=False)
    return name


def bench_database_drop() -> None:
    name = bench_database_name()
    connections.close_all()
    server = raw_connect(database=None)
    try:
        with server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        server.close()


def server_facts() -> dict[str, Any]:
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit, @@tx_isolation"
        )
        version, pool, flush, isolation = cursor.fetchone()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "python": platform.python_version(),
        "mariadb_version": version,
        "innodb_buffer_pool_size_mib": int(pool) // (1024 * 1024),
        "innodb_flush_log_at_trx_commit": int(flush),
        "transaction_isolation": isolation,
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def row_counts() -> dict[str, int]:
    tables = ("trade_orders", "audit_logs", "trade_runs", "trade_guard_state")
    counts = {}
    with connections[trading_alias()].cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM `{table}`")
            counts[table] = int(cursor.fetchone()[0])
    return counts


def session_status(cursor: Any, names: tuple[str, ...]) -> dict[str, int]:
    """This connection's own status counters (SHOW SESSION STATUS), by name."""
    quoted = ", ".join(f"'{name}'" for name in names)
    cursor.execute(f"SHOW SESSION STATUS WHERE Variable_name IN ({quoted})")
    return {str(name): int(value) for name, value in cursor.fetchall()}


def server_quiesce(*, timeout: float = 120.0, poll: float = 3.0) -> dict[str, Any]:
    """Wait until InnoDB stops flushing what the data load dirtied (no side pays for it).

    MariaDB leaves some pages dirty when idle (adaptive flushing below its low-water
    mark), so "flushing stopped" is: the dirty count did not move between two polls.
    """
    started = time.monotonic()
    names = ("Innodb_buffer_pool_pages_dirty", "Innodb_buffer_pool_pages_total")
    quoted = ", ".join(f"'{name}'" for name in names)
    previous = -1
    with connections[trading_alias()].cursor() as cursor:
        while True:
            cursor.execute(f"SHOW GLOBAL STATUS WHERE Variable_name IN ({quoted})")
            status = {str(k): int(v) for k, v in cursor.fetchall()}
            dirty, waited = status[names[0]], time.monotonic() - started
            if dirty == previous or dirty == 0 or waited >= timeout:
                return {
                    "waited_seconds": round(waited, 1),
                    "dirty_pages": dirty,
                    "pool_pages": status[names[1]],
                }
            previous = dirty
            time.sleep(poll)


def git_facts() -> dict[str, Any]:
    """Which code was measured: the commit, and how many files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=settings.BASE_DIR, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_changed_files": len(git("status", "--porcelain").splitlines()),
    }


def load_average() -> list[float]:
    """Other work on the machine skews times; the JSON says how busy it was."""
    return [round(x, 2) for x in os.getloadavg()]
