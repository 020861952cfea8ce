"""(d) The recovery rate on a 3-node Galera cluster beside a single server, as cron runs it.

Both are MariaDB servers of our own on loopback ports (recovery.tests.galera), with the same
options (innodb_flush_log_at_trx_commit=2, as the cluster's nodes run), so the difference
is the cluster's: every commit is certified by the other nodes. Each run is a whole
`manage.py auto_recover --json` process over a fresh batch of stale MKT orders; its rate
is the orders it re-placed over the sweep's own duration (its heartbeat row), so Django's
start-up is left out. Then three runs at once, one per node, as three cron hosts would:
their exit codes, counts and the rate they reach together.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from recovery.tests.galera import GaleraCluster, LocalServers, Node, galera_missing
from recovery.tests.server_scenario import (
    RUN_SECONDS,
    auto_recover,
    connect,
    database_create,
    last_json,
    rows,
    scenario_create,
)

COUNTS = ("scanned", "cancelled", "replaced", "skipped", "failed")
# Originals of the batch still NEW (replacements are NEW too, and carry their origin).
ORIGINALS_LEFT_NEW = (
    "SELECT COUNT(*) FROM trade_orders WHERE status = 'NEW'"
    " AND JSON_VALUE(params, '$.auto_recovery.origin_order_id') IS NULL"
)


def _heartbeats(connection: Any) -> list[dict[str, Any]]:
    found = rows(
        connection, "SELECT started_at, ended_at, duration_seconds FROM tradeops_sweep_runs ORDER BY id"
    )
    return [{"started": s, "ended": e, "seconds": d} for s, e, d in found]


def _runs(nodes: list[Node], *, orders: int, folder: Path, galera: bool) -> dict[str, Any]:
    """One fresh batch, one auto_recover per node in `nodes`, started together."""
    db = connect(nodes[0], galera=galera)
    try:
        scenario_create(db, orders=orders)
        bridge = folder / "bridge"
        bridge.mkdir(exist_ok=True)
        extra = {"LEAN_BRIDGE_ROOT": str(bridge), "AUTO_RECOVER_LOCK_DIR": str(folder)}
        processes = [auto_recover(f"bench-node{n.index}", n, folder=folder, **extra) for n in nodes]
        codes = [p.wait(RUN_SECONDS) for p in processes]
        reports = [last_json(p) for p in processes]
        beats = _heartbeats(db)
        left_new = rows(db, ORIGINALS_LEFT_NEW)
    finally:
        db.close()
    span = (max(b["ended"] for b in beats) - min(b["started"] for b in beats)).total_seconds()
    replaced = sum(r["replaced"] for r in reports)
    return {
        "exit_codes": codes,
        "counts": [{k: r[k] for k in COUNTS} for r in reports],
        "reasons": [r["reasons"] for r in reports],
        "sweep_seconds": [b["seconds"] for b in beats],
        "span_seconds": span,
        "replaced": replaced,
        "left_new": left_new[0][0],
        "orders_per_second": replaced / span if span > 0 else None,
    }


def _median_rate(samples: list[dict[str, Any]]) -> float:
    return statistics.median(s["orders_per_second"] for s in samples)


def cluster_measure(*, orders: int, repeats: int) -> dict[str, Any]:
    missing = galera_missing()
    if missing:
        return {"skipped": missing}
    measured: dict[str, Any] = {"orders": orders, "repeats": repeats}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        single = LocalServers(size=1, galera=False, flush_log=2)
        try:
            single.start()
            database_create(single.nodes[0])
            measured["single"] = [
                _runs(single.nodes, orders=orders, folder=folder, galera=False) for _ in range(repeats)
            ]
        finally:
            single.remove()
        cluster = GaleraCluster()
        try:
            cluster.start()
            database_create(cluster.nodes[0])
            one = [
                _runs(cluster.nodes[:1], orders=orders, folder=folder, galera=True) for _ in range(repeats)
            ]
            measured["cluster_one_node"] = one
            measured["cluster_three_nodes"] = _runs(cluster.nodes, orders=orders, folder=folder, galera=True)
        finally:
            cluster.remove()
    measured["single_orders_per_second"] = _median_rate(measured["single"])
    measured["cluster_orders_per_second"] = _median_rate(measured["cluster_one_node"])
    return measured
