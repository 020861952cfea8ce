"""The scenario on servers of our own (recovery.tests.galera): schema, orders, commands, checks.

Shared by test_cluster.py and test_database_crash.py. The commands run as cron runs them:
`manage.py auto_recover` with the production settings module, DATABASE_URL naming one
server (a cluster node), no working directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings

from recovery.tests.galera import Node
from recovery.tests.gateway import gateway_port
from recovery.tests.proof_worker import Process
from recovery.tests.test_proof_crashes import BROKEN

DATABASE = "tradeops_servers"
SETTINGS = {
    "max_replacements_per_sweep": 1000,
    "max_replacements_per_hour": 10000,
    "allow_replace_outside_rth": True,
    "replace_same_trading_day_only": False,
}
RUN_SECONDS = 180


def database_create(node: Node) -> None:
    """The trading tables (reference DDL and patches) and Django's own (heartbeat)."""
    node.sql(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    base = Path(settings.BASE_DIR)
    node.sql_file(base / "fixtures" / "trading_schema.mysql.sql", database=DATABASE)
    for patch in sorted((base / "deploy" / "mysql" / "patches").glob("*.sql")):
        node.sql_file(patch, database=DATABASE)
    migrate = Process(
        "migrate", manage("migrate", "--no-input"), folder=node.folder, env=node_env(node), cwd="/"
    )
    assert migrate.wait(RUN_SECONDS) == 0, migrate.stderr()[-3000:]


def manage(*args: str) -> list[str]:
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]


def node_env(node: Node, **extra: str) -> dict[str, str]:
    """The environment cron on the node's host would give the command."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "TRADING_DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="tradeops.settings",
        SECRET_KEY="server-tests",
        DATABASE_URL=node.url(DATABASE),
        RECOVERY_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def auto_recover(name: str, node: Node, *args: str, folder: Path, **extra: str) -> Process:
    """`manage.py auto_recover --json --limit 1000 [args]` against `node`, as cron runs it."""
    command = manage("auto_recover", "--json", "--limit", "1000", *args)
    return Process(name, command, folder=folder, env=node_env(node, **extra), cwd="/")


def last_json(process: Process) -> dict[str, Any]:
    return json.loads(process.out.read_text().splitlines()[-1])


def connect(node: Node, *, galera: bool) -> Any:
    import MySQLdb  # the MySQL driver: not installed for the SQLite-only run

    connection = MySQLdb.connect(
        host="127.0.0.1", port=node.port, user="root", database=DATABASE, autocommit=True
    )
    if galera:
        with connection.cursor() as cursor:
            # Reads see every write the cluster committed before them, whichever node took it.
            cursor.execute("SET SESSION wsrep_sync_wait = 15")
    return connection


def rows(connection: Any, sql: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def scenario_create(connection: Any, *, orders: int) -> set[int]:
    """Settings, a gateway that answers (this process's stand-in), and `orders` stale MKT
    orders, NEW for an hour or so."""
    with connection.cursor() as cursor:
        for table in ("audit_logs", "trade_orders", "trade_settings", "ib_settings", "tradeops_sweep_runs"):
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(
            "INSERT INTO trade_settings (risk_defaults, auto_recovery) VALUES ('{}', %s)",
            [json.dumps(SETTINGS)],
        )
        cursor.execute(
            "INSERT INTO ib_settings (host, port, api_mode) VALUES ('127.0.0.1', %s, 'ib')", [gateway_port()]
        )
        cursor.execute(
            "INSERT INTO trade_orders (client_order_id, symbol, side, quantity, order_type, status, params,"
            " created_at, updated_at)"
            " SELECT CONCAT('stale-', LPAD(seq, 5, '0')), 'AAPL', IF(seq % 2, 'BUY', 'SELL'), 10, 'MKT',"
            " 'NEW',"
            ' \'{"strategy": "servers"}\', UTC_TIMESTAMP() - INTERVAL 3600 - seq SECOND,'
            " UTC_TIMESTAMP() - INTERVAL 3600 - seq SECOND"
            f" FROM seq_1_to_{orders}"
        )
    return {row[0] for row in rows(connection, "SELECT id FROM trade_orders")}


def invariants_assert(connection: Any) -> None:
    """Every guarantee of the proof suite (test_proof_crashes.BROKEN) on the committed rows."""
    broken = {}
    for name, sql in BROKEN.items():
        found = rows(connection, sql)
        if found:
            broken[name] = [row[0] for row in found[:20]]
    assert broken == {}
