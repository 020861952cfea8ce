"""Several hosts on a real cluster: three `auto_recover` runs, one per Galera node, at once.

A 3-node MariaDB Galera cluster on loopback ports (recovery.tests.galera), 140 stale MKT
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

import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP
from recovery.db.locks import LOCK_NAME
from recovery.tests.galera import GaleraCluster, galera_missing
from recovery.tests.proof_worker import Process
from recovery.tests.server_scenario import (
    RUN_SECONDS,
    auto_recover,
    connect,
    database_create,
    invariants_assert,
    last_json,
    node_env,
    rows,
    scenario_create,
)

pytestmark = [pytest.mark.mysql, pytest.mark.galera, pytest.mark.processes]

# Fewer than the 150 rows the backend's direct-order loop may have ahead of a replacement
# (rule 10b): no loop runs here to send the replacements, so every order fits, in every run.
ORDERS = 140


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[GaleraCluster]:
    missing = galera_missing()
    if missing:
        pytest.skip(f"Galera cannot start here: {missing}")
    cluster = GaleraCluster(size=3)
    try:
        cluster.start()
        assert cluster.size() == 3
        database_create(cluster.nodes[0])
        failed_before = request.session.testsfailed
        yield cluster
        if request.session.testsfailed > failed_before:
            # What the nodes said: a node that crashed or left the cluster shows here.
            for node in cluster.nodes:
                print(f"--- node {node.index} error log (tail) ---\n{node.tail()}", file=sys.stderr)
    finally:
        cluster.remove()


def first_run_in_sweep(cluster: GaleraCluster, runs: list[Process], *, deadline: float) -> None:
    """Wait until a run holds its node's named lock (GET_LOCK is per node) or a run has ended."""
    nodes = [connect(node, galera=False) for node in cluster.nodes]
    try:
        def started(db: object, run: Process) -> bool:
            held = rows(db, "SELECT IS_USED_LOCK(%s)", (LOCK_NAME,))[0][0]
            return held is not None or run.popen.poll() is not None

        while not any(started(db, run) for db, run in zip(nodes, runs, strict=True)):
            assert time.monotonic() < deadline, "no run took its lock"
            time.sleep(0.002)
    finally:
        for db in nodes:
            db.close()


def test_three_nodes_three_runs_every_order_once_and_honest(cluster: GaleraCluster, tmp_path: Path) -> None:
    """Any wall clock: the scenario's settings allow re-placing outside regular hours and its
    orders are stamped by the server an hour back.
    """
    db = connect(cluster.nodes[0], galera=True)
    originals = scenario_create(db, orders=ORDERS)
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
    runs = [auto_recover(f"cron-node{n.index}", n, folder=tmp_path, **extra) for n in cluster.nodes]
    # The executor starts once a run is in its sweep (its node's named lock taken): started
    # with the processes, it acknowledged all 140 orders while Python was still starting the
    # runs on a loaded machine, and left them nothing to race.
    first_run_in_sweep(cluster, runs, deadline=deadline)
    go.touch()
    codes = [run.wait(RUN_SECONDS) for run in runs]
    stop.touch()
    assert all(run.out.read_text().strip() for run in runs), [run.stderr()[-2000:] for run in runs]
    reports = [last_json(run) for run in runs]
    executed = executor.json()
    acknowledged = set(executed["acknowledged"])
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
    executor_figures = {k: executed[k] for k in ("lost", "errors", "reconnects")}
    print("executor:", len(acknowledged), "acknowledged", executor_figures)

    # Honest exit codes and counts: no false alarm, nothing failed.
    assert codes == [0, 0, 0], [run.stderr()[-2000:] for run in runs]
    for report in reports:
        assert report["failed"] == 0
        assert report["scanned"] == report["cancelled"] + report["skipped"] + report["failed"]
        # backend_sender_unavailable: another run's replacements filled the backend's loop
        # queue at that moment (rule 10b); the order stays NEW and the run after takes it.
        honest = {"replaced", "changed_concurrently", "backend_sender_unavailable"}
        assert set(report["reasons"]) <= honest, report["reasons"]
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
    after = auto_recover("cron-after", cluster.nodes[1], folder=tmp_path, **extra)
    assert after.wait(RUN_SECONDS) == 0, after.stderr()[-2000:]
    final = last_json(after)
    assert final["cancelled"] == len(left)
    invariants_assert(db)
    remaining = rows(
        db, "SELECT COUNT(*) FROM trade_orders WHERE status = 'NEW' AND id IN %s", (tuple(originals),)
    )
    assert remaining[0][0] == 0
    db.close()
