"""The database server killed (SIGKILL, like an OOM kill) while `auto_recover` is writing.

A MariaDB server of our own (recovery.tests.galera.LocalServers, no wsrep), 1,000 stale
MKT orders, one `manage.py auto_recover` as cron runs it. Once it has committed some
orders the server is killed. The run must stop at once (no order tried against the dead
server), exit 4 with one line saying how many orders it recovered and that the rest stay
NEW, and keep its summary audit row for the next run. After a restart (InnoDB crash
recovery) nothing is half-done, and the next run writes that row and finishes the work.

The kill lands at the same place on a slow machine and a fast one, without a sleep: before
the run starts, the test holds an uncommitted row with the client id the replacement of the
(KILL_AFTER + 1)-th order will take. The run commits KILL_AFTER orders, then waits inside
that order's transaction (its insert waits on the unique key) with 849 orders still to go,
and the server is killed while it waits. Crash recovery rolls the test's row back.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.db.audit import ACTION_CANCEL, ACTION_SWEEP
from recovery.db.audit_spool import SPOOL_FOLDER
from recovery.tests.galera import LocalServers, server_missing
from recovery.tests.server_scenario import (
    RUN_SECONDS,
    auto_recover,
    connect,
    database_create,
    invariants_assert,
    last_json,
    rows,
    scenario_create,
)

pytestmark = [pytest.mark.mysql, pytest.mark.processes]

# Fewer than the 150 rows the backend's direct-order loop may have ahead of a replacement
# (rule 10b): no loop runs here to send the replacements, so every order fits, in both runs.
ORDERS = 140
KILL_AFTER = 100  # committed orders before the kill: well inside the run
# The orders go oldest first and `stale-00001` is the oldest (server_scenario), so the
# order after the first KILL_AFTER is `stale-00151`; its replacement takes this client id.
BLOCKED_CLIENT_ID = f"stale-{KILL_AFTER + 1:05d}-r1"
LINE = re.compile(
    r"lost the database connection mid-sweep \(MySQL 20\d\d: .+\): (\d+) order\(s\) recovered before it; "
    r"order \d+ was in flight \(committed whole or not at all; the next run sees which\); "
    r"(\d+) not tried stay NEW for the next run"
)


@pytest.fixture
def server() -> Iterator[LocalServers]:
    missing = server_missing()
    if missing:
        pytest.skip(f"cannot start a MariaDB server of our own: {missing}")
    servers = LocalServers(size=1, galera=False)
    try:
        servers.start()
        database_create(servers.nodes[0])
        yield servers
    finally:
        servers.remove()


def cancelled_count(node) -> int:  # noqa: ANN001
    db = connect(node, galera=False)
    try:
        return rows(db, "SELECT COUNT(*) FROM audit_logs WHERE action = %s", (ACTION_CANCEL,))[0][0]
    finally:
        db.close()


def replacement_slot_hold(node):  # noqa: ANN001, ANN201
    """An open transaction holding BLOCKED_CLIENT_ID uncommitted: the run's insert of that id waits."""
    db = connect(node, galera=False)
    db.autocommit(False)
    with db.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trade_orders (client_order_id, symbol, side, quantity, order_type, status)"
            " VALUES (%s, 'AAPL', 'BUY', 1, 'MKT', 'CANCELED')",
            (BLOCKED_CLIENT_ID,),
        )
    return db


def replacement_insert_waiting(node) -> bool:  # noqa: ANN001
    """The run's connection is inside the held order's transaction, its insert waiting."""
    db = connect(node, galera=False)
    try:
        inserting = rows(
            db,
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST"
            " WHERE ID <> CONNECTION_ID() AND INFO LIKE 'INSERT INTO trade_orders%%'",
        )
        return inserting[0][0] == 1
    finally:
        db.close()


def test_a_server_killed_mid_sweep_stops_the_run_and_the_next_run_finishes(
    server: LocalServers, tmp_path: Path
) -> None:
    """The real clock's hour does not matter: the scenario's settings allow re-placing outside RTH."""
    node = server.nodes[0]
    db = connect(node, galera=False)
    originals = scenario_create(db, orders=ORDERS)
    db.close()
    bridge = tmp_path / "bridge"
    bridge.mkdir()
    extra = {"LEAN_BRIDGE_ROOT": str(bridge), "AUTO_RECOVER_LOCK_DIR": str(tmp_path)}

    holder = replacement_slot_hold(node)
    metrics = tmp_path / "metrics.prom"
    dying = auto_recover("dying", node, "--metrics-file", str(metrics), folder=tmp_path, **extra)
    # The database's read timeout (15 s) would end the wait by itself: the kill comes well before.
    deadline = time.monotonic() + RUN_SECONDS
    while not (cancelled_count(node) == KILL_AFTER and replacement_insert_waiting(node)):
        assert dying.popen.poll() is None, f"the run ended before the kill:\n{dying.stderr()[-2000:]}"
        assert time.monotonic() < deadline, "the run never reached the held replacement id"
        time.sleep(0.01)
    server.kill(node)
    holder.close()

    assert dying.wait(RUN_SECONDS) == 4, dying.stderr()[-3000:]
    stderr = dying.stderr()
    match = LINE.search(stderr)
    assert match, stderr[-3000:]
    print("the dying run's stderr:", *stderr.strip().splitlines()[-4:], sep="\n  ")
    recovered, not_tried = int(match[1]), int(match[2])
    assert stderr.count("write failed") == 0  # no order was tried against the dead server
    assert (recovered, not_tried) == (KILL_AFTER, ORDERS - KILL_AFTER - 1)
    report = last_json(dying)
    assert (report["cancelled"], report["not_tried"], report["failed"]) == (recovered, not_tried, 0)
    assert report["connection_lost"]
    # The metrics say so although the database (and the heartbeat with it) is gone.
    assert 'tradeops_auto_recover_last_run_outcome{outcome="connection_lost"} 1.0' in metrics.read_text()
    kept = list((tmp_path / SPOOL_FOLDER).glob("*.json"))
    assert len(kept) == 1  # the summary row, for the next run

    server.restart(node)
    db = connect(node, galera=False)
    invariants_assert(db)
    # The order in flight was waiting when the server died: rolled back whole, as was the
    # test's own uncommitted row.
    held = rows(db, "SELECT COUNT(*) FROM trade_orders WHERE client_order_id = %s", (BLOCKED_CLIENT_ID,))
    assert held == [(0,)]
    committed = rows(db, "SELECT COUNT(*) FROM trade_orders WHERE status = 'CANCELED'")[0][0]
    assert committed == recovered
    assert rows(db, "SELECT COUNT(*) FROM audit_logs WHERE action = %s", (ACTION_SWEEP,))[0][0] == 0

    after = auto_recover("after", node, folder=tmp_path, **extra)
    assert after.wait(RUN_SECONDS) == 0, after.stderr()[-3000:]
    assert last_json(after)["cancelled"] == ORDERS - committed
    invariants_assert(db)
    ids = tuple(originals)
    assert (
        rows(db, "SELECT COUNT(*) FROM trade_orders WHERE status = 'CANCELED' AND id IN %s", (ids,))[0][0]
        == ORDERS
    )
    sweeps = rows(
        db,
        "SELECT JSON_VALUE(detail, '$.sweep_id'), JSON_VALUE(detail, '$.not_tried') FROM audit_logs"
        " WHERE action = %s ORDER BY id",
        (ACTION_SWEEP,),
    )
    assert [s[0] for s in sweeps] == [report["sweep_id"], last_json(after)["sweep_id"]]
    assert int(sweeps[0][1]) == not_tried
    assert list((tmp_path / SPOOL_FOLDER).glob("*.json")) == []
    db.close()
