"""A connection lost mid-sweep, in process: killed by the server, or timed out on a hung one.

The sweep stops at once (no further order is tried), the command exits 4 with one line,
the heartbeat and the metrics record the outcome, the summary audit row is kept and the
next run writes it and finishes the work. MariaDB only: the loss is real (KILL CONNECTION,
or the driver's read timeout against a statement the test holds in the server).
"""

from __future__ import annotations

import io
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from recovery.db.audit import ACTION_CANCEL, ACTION_SWEEP
from recovery.db.audit_spool import SPOOL_FOLDER
from recovery.db.models import AuditLog, SweepRun, TradeOrder
from recovery.db.routers import trading_alias
from recovery.services import sweep_run
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order
from recovery.tests.faults import faults_installed

pytestmark = pytest.mark.mysql

HELD_SECONDS = 30  # how long the trigger holds the in-flight statement: ended by the kill or the timeout


def side_connection() -> Any:
    s = connections[trading_alias()].settings_dict
    import MySQLdb  # the MySQL driver: not installed for the SQLite-only run

    return MySQLdb.connect(
        host=s["HOST"] or "127.0.0.1",
        port=int(s["PORT"] or 3306),
        user=s["USER"],
        password=s["PASSWORD"],
        database=s["NAME"],
        autocommit=True,
    )


def kill_when_held(database: str) -> threading.Thread:
    """KILL CONNECTION the session that sleeps inside the fault trigger, once it does."""

    def watch() -> None:
        side = side_connection()
        with side.cursor() as cursor:
            for _ in range(3000):
                cursor.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND STATE = 'User sleep'",
                    [database],
                )
                found = cursor.fetchone()
                if found:
                    cursor.execute(f"KILL CONNECTION {int(found[0])}")
                    break
                threading.Event().wait(0.01)
        side.close()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


@pytest.fixture
def five_orders(committed_db, bridge):  # noqa: ANN001, ANN201
    factories.TradeSettingsFactory(
        auto_recovery={"allow_replace_outside_rth": True, "replace_same_trading_day_only": False}
    )
    factories.IbSettingsFactory()
    orders = [stale_order(age=500 - 10 * i, client_order_id=f"loss-{i}") for i in range(5)]
    with faults_installed() as faults:
        faults.add(
            orders[2].pk, times=1, errno=0, sleep_seconds=HELD_SECONDS
        )  # the third order's cancel hangs
        yield orders


def test_a_killed_connection_stops_the_sweep_and_the_next_run_finishes(
    five_orders, settings, tmp_path
) -> None:  # noqa: ANN001
    orders = five_orders
    metrics = tmp_path / "metrics.prom"
    watcher = kill_when_held(connections[trading_alias()].settings_dict["NAME"])
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("auto_recover", "--metrics-file", str(metrics), now=CLOCK, stdout=out, stderr=err)
    watcher.join()

    assert raised.value.returncode == 4
    line = str(raised.value)
    assert re.fullmatch(
        rf"lost the database connection mid-sweep \(MySQL \d+: .+\): 2 order\(s\) recovered before it; "
        rf"order {orders[2].pk} was in flight \(committed whole or not at all; the next run sees which\); "
        r"2 not tried stay NEW for the next run",
        line,
    ), line
    status = dict(TradeOrder.objects.filter(pk__in=[o.pk for o in orders]).values_list("pk", "status"))
    assert [status[o.pk] for o in orders] == ["CANCELED", "CANCELED", "NEW", "NEW", "NEW"]
    assert AuditLog.objects.filter(action=ACTION_CANCEL).count() == 2
    assert not AuditLog.objects.filter(action=ACTION_SWEEP).exists()
    kept = list((Path(settings.AUTO_RECOVER_LOCK_DIR) / SPOOL_FOLDER).glob("*.json"))
    assert len(kept) == 1
    # The server itself is fine: the heartbeat and the metrics reconnect and record the loss.
    heartbeat = SweepRun.objects.get()
    assert (heartbeat.outcome, heartbeat.cancelled, heartbeat.message) == ("connection_lost", 2, line)
    assert 'tradeops_auto_recover_last_run_outcome{outcome="connection_lost"} 1.0' in metrics.read_text()

    call_command("auto_recover", now=CLOCK, stdout=io.StringIO())
    assert TradeOrder.objects.filter(pk__in=[o.pk for o in orders], status="CANCELED").count() == 5
    sweeps = list(AuditLog.objects.filter(action=ACTION_SWEEP).order_by("id"))
    assert [s.detail["cancelled"] for s in sweeps] == [2, 3]
    assert (sweeps[0].detail["in_flight"], sweeps[0].detail["not_tried"]) == (orders[2].pk, 2)
    assert sweeps[0].created_at == CLOCK  # written by the next run, with its own time
    assert list((Path(settings.AUTO_RECOVER_LOCK_DIR) / SPOOL_FOLDER).glob("*.json")) == []


def test_a_hung_server_fails_the_run_by_the_read_timeout(five_orders) -> None:  # noqa: ANN001
    """The statement never answers: the driver's read timeout turns it into a lost connection."""
    orders = five_orders
    connection = connections[trading_alias()]
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("read_timeout")
    options["read_timeout"] = 1
    connection.close()  # the next query connects with the short timeout
    try:
        result = sweep_run(now=CLOCK, actor="t")
    finally:
        if saved is None:
            options.pop("read_timeout")
        else:
            options["read_timeout"] = saved
        connection.close()
        side = side_connection()
        with side.cursor() as cursor:  # end the held statement so the teardown need not wait for it
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND STATE = 'User sleep'",
                [connection.settings_dict["NAME"]],
            )
            for (held,) in cursor.fetchall():
                cursor.execute(f"KILL CONNECTION {int(held)}")
        side.close()
    assert result.connection_lost is not None and "2013" in result.connection_lost
    assert (result.cancelled, result.in_flight, result.not_tried, result.failed) == (2, orders[2].pk, 2, 0)
    assert [o.id for o in result.orders] == [orders[0].pk, orders[1].pk]  # nothing after the loss
