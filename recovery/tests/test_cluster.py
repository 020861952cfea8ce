"""Several hosts on a real cluster: three `auto_recover` runs, one per Galera node, at once.

A 3-node MariaDB Galera cluster on loopback ports (recovery.tests.galera), 600 stale MKT
orders, the backend's executor acknowledging orders at random on one node, and one
`manage.py auto_recover` per node started together, as cron on three hosts would. The
named lock is per server, so all three run. What must hold:

- every order recovered at most once: one cancel, one replacement, their audit rows;
  no cancel without its replacement; no acknowledged order cancelled;
- every run's exit code and counts honest: an order another node recovered first (its
  commit refused by certification, or its cancel matching nothing) is
  `changed_concurrently`, not `write_failed`; exit 0 for all three;
- what each run reports it did is what the database holds, and a run after them finishes
  whatever they left.

Skipped, with the reason, only where Galera cannot start (no galera-4, rsync or
wsrep-enabled mariadbd).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import MySQLdb
import pytest
from django.conf import settings

from recovery.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP
from recovery.tests.galera import GaleraCluster, Node, galera_missing
from recovery.tests.proof_worker import Process
from recovery.tests.test_proof_crashes import BROKEN

pytestmark = [pytest.mark.mysql, pytest.mark.galera]

DATABASE = "tradeops_cluster"
ORDERS = 600
SETTINGS = {"max_replacements_per_sweep": 1000, "allow_replace_outside_rth": True}
RUN_SECONDS = 180


@pytest.fixture(scope="module")
def cluster() -> Iterator[GaleraCluster]:
    missing = galera_missing()
    if missing:
        pytest.skip(f"Galera cannot start here: {missing}")
    cluster = GaleraCluster(size=3)
    try:
        cluster.start()
        assert cluster.size() == 3
        schema_load(cluster.nodes[0])
        yield cluster
    finally:
        cluster.remove()


def schema_load(node: Node) -> None:
    """The trading tables (reference DDL and patches) and Django's own (heartbeat) on the cluster."""
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
        SECRET_KEY="cluster-tests",
        DATABASE_URL=node.url(DATABASE),
        RECOVERY_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def connect(node: Node) -> Any:
    connection = MySQLdb.connect(
        host="127.0.0.1", port=node.port, user="root", database=DATABASE, autocommit=True
    )
    with connection.cursor() as cursor:
        # Reads see every write the cluster committed before them, whichever node took it.
        cursor.execute("SET SESSION wsrep_sync_wait = 15")
    return connection


def rows(connection: Any, sql: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def scenario_create(connection: Any) -> set[int]:
    """Settings, IB in mock mode, and ORDERS stale MKT orders, NEW for an hour or so."""
    with connection.cursor() as cursor:
        for table in ("audit_logs", "trade_orders", "trade_settings", "ib_settings", "tradeops_sweep_runs"):
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(
            "INSERT INTO trade_settings (risk_defaults, auto_recovery) VALUES ('{}', %s)",
            [json.dumps(SETTINGS)],
        )
        cursor.execute("INSERT INTO ib_settings (host, port, api_mode) VALUES ('127.0.0.1', 1, 'mock')")
        cursor.execute(
            "INSERT INTO trade_orders (client_order_id, symbol, side, quantity, order_type, status, params,"
            " created_at, updated_at)"
            " SELECT CONCAT('cluster-', LPAD(seq, 5, '0')), 'AAPL', IF(seq % 2, 'BUY', 'SELL'), 10, 'MKT',"
            " 'NEW',"
            ' \'{"strategy": "cluster"}\', UTC_TIMESTAMP() - INTERVAL 3600 - seq SECOND,'
            " UTC_TIMESTAMP() - INTERVAL 3600 - seq SECOND"
            f" FROM seq_1_to_{ORDERS}"
        )
    return {row[0] for row in rows(connection, "SELECT id FROM trade_orders")}


def invariants_assert(connection: Any) -> None:
    broken = {}
    for name, sql in BROKEN.items():
        found = rows(connection, sql)
        if found:
            broken[name] = [row[0] for row in found[:20]]
    assert broken == {}


def test_three_nodes_three_runs_every_order_once_and_honest(cluster: GaleraCluster, tmp_path: Path) -> None:
    db = connect(cluster.nodes[0])
    originals = scenario_create(db)
    bridge = tmp_path / "bridge"
    bridge.mkdir()
    extra = {"LEAN_BRIDGE_ROOT": str(bridge), "AUTO_RECOVER_LOCK_DIR": str(tmp_path)}

    # The executor acknowledges orders at random on node 2 while the runs race.
    go, stop = tmp_path / "go", tmp_path / "stop"
    executor_node = cluster.nodes[2]
    executor = Process(
        "executor",
        [sys.executable, "-m", "recovery.tests.proof_worker", "executor",
         "--ready", str(tmp_path / "executor.ready"), "--go", str(go), "--stop", str(stop),
         "--seed", "10", "--batch", "3", "--pause", "0.02"],
        folder=tmp_path,
        env=node_env(executor_node, DJANGO_SETTINGS_MODULE="tradeops.settings_test", **extra),
        cwd=str(settings.BASE_DIR),
    )  # fmt: skip
    deadline = time.monotonic() + RUN_SECONDS
    while not (tmp_path / "executor.ready").exists():
        assert executor.popen.poll() is None, executor.stderr()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runs = [
        Process(f"cron-node{n.index}", manage("auto_recover", "--json", "--limit", "1000"),
                folder=tmp_path, env=node_env(n, **extra), cwd="/")
        for n in cluster.nodes
    ]  # fmt: skip
    go.touch()
    codes = [run.wait(RUN_SECONDS) for run in runs]
    stop.touch()
    acknowledged = set(executor.json()["acknowledged"])
    reports = [json.loads(run.out.read_text().splitlines()[-1]) for run in runs]
    counts = ("scanned", "cancelled", "replaced", "skipped", "failed")
    summary = [(code, {k: r[k] for k in counts}, r["reasons"]) for code, r in zip(codes, reports, strict=1)]
    print("cluster runs (exit code, counts, reasons):", *summary, sep="\n  ")
    why = Counter(
        (o["detail"] or "").split(" (")[0].split(",")[0]
        for r in reports
        for o in r["orders"]
        if o["reason"] == "changed_concurrently"
    )
    print("changed_concurrently, by what the order was:", dict(why))

    # Honest exit codes and counts: no false alarm, nothing failed.
    assert codes == [0, 0, 0], [run.stderr()[-2000:] for run in runs]
    for report in reports:
        assert report["failed"] == 0
        assert report["scanned"] == report["cancelled"] + report["skipped"] + report["failed"]
        assert set(report["reasons"]) <= {"replaced", "changed_concurrently"}, report["reasons"]
        assert report["connection_lost"] is None

    # Every guarantee on the committed rows, read with wsrep_sync_wait.
    invariants_assert(db)
    status = dict(rows(db, "SELECT id, status FROM trade_orders"))
    cancelled = {i for i in originals if status[i] == "CANCELED"}
    assert cancelled & acknowledged == set(), "an acknowledged order was cancelled"
    by_run = Counter(o["id"] for r in reports for o in r["orders"] if o["decision"] == "replace")
    assert set(by_run) == cancelled and max(by_run.values()) == 1, "an order recovered twice, or unreported"
    for report in reports:
        sweep_rows = rows(
            db,
            "SELECT COUNT(*) FROM audit_logs WHERE action = %s AND JSON_VALUE(detail, '$.sweep_id') = %s",
            (ACTION_CANCEL, report["sweep_id"]),
        )
        assert sweep_rows[0][0] == report["cancelled"]
    assert rows(db, "SELECT COUNT(*) FROM audit_logs WHERE action = %s", (ACTION_REPLACE,))[0][0] == len(
        cancelled
    )
    sweeps = rows(db, "SELECT COUNT(*) FROM audit_logs WHERE action = %s", (ACTION_SWEEP,))[0][0]
    assert sweeps == sum(1 for r in reports if r["cancelled"])

    # What a run calls changed_concurrently really changed: another run took it, or the broker has it.
    for report in reports:
        for order in report["orders"]:
            if order["reason"] == "changed_concurrently":
                other = order["id"] in by_run and order["decision"] != "replace"
                assert other or order["id"] in acknowledged or status[order["id"]] == "NEW", order
    # Orders all three passed over (held by a lock at that moment) are left NEW, and the next run takes them.
    left = [i for i in originals if status[i] == "NEW" and i not in acknowledged]
    after = Process("cron-after", manage("auto_recover", "--json", "--limit", "1000"), folder=tmp_path,
                    env=node_env(cluster.nodes[1], **extra), cwd="/")  # fmt: skip
    assert after.wait(RUN_SECONDS) == 0, after.stderr()[-2000:]
    final = json.loads(after.out.read_text().splitlines()[-1])
    assert final["cancelled"] == len(left)
    invariants_assert(db)
    remaining = rows(
        db, "SELECT COUNT(*) FROM trade_orders WHERE status = 'NEW' AND id IN %s", (tuple(originals),)
    )
    assert remaining[0][0] == 0
    db.close()
