"""Heartbeat: every run of the sweep leaves one row, whatever its outcome; old rows are pruned."""

from __future__ import annotations

import datetime as dt
import io
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from recovery.db.locks import LOCK_NAME, sweep_lock
from recovery.db.models import SweepRun, TradeOrder, TradeSettings
from recovery.db.routers import trading_alias
from recovery.ops.runs import heartbeat_prune, sweep_run_recorded
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order
from recovery.tests.faults import faults_installed

pytestmark = pytest.mark.django_db


def command(*args: str, expect: int = 0) -> str:
    out = io.StringIO()
    if expect:
        with pytest.raises(CommandError) as raised:
            call_command("auto_recover", *args, now=CLOCK, stdout=out)
        assert raised.value.returncode == expect
    else:
        call_command("auto_recover", *args, now=CLOCK, stdout=out)
    return out.getvalue()


def last() -> SweepRun:
    return SweepRun.objects.order_by("-id").first()


def test_a_run_that_found_nothing_is_recorded_ok(trading) -> None:
    command()
    run = last()
    assert (run.outcome, run.actor, run.scanned) == ("ok", "auto_recover", 0)
    assert run.host == socket.gethostname()
    assert run.started_at == CLOCK and run.ended_at >= run.started_at and run.duration_seconds >= 0
    assert run.sweep_id


def test_ok_run_records_counts_and_reasons(trading) -> None:
    stale_order()
    stale_order(side="X")
    trading.open_orders([stale_order().client_order_id])
    command()
    run = last()
    assert (run.outcome, run.scanned, run.cancelled, run.replaced, run.skipped, run.failed) == (
        "ok",
        3,
        2,
        1,
        1,
        0,
    )
    assert run.reasons == {"invalid_order": 1, "open_at_broker": 1, "replaced": 1}


@pytest.mark.mysql
def test_failed_run_is_recorded_failed(committed_db, bridge) -> None:  # noqa: ANN001
    """A write the server refuses (an injected trigger error, no conflict): exit 1, recorded."""
    factories.TradeSettingsFactory(auto_recovery={})
    factories.IbSettingsFactory()
    order = stale_order(client_order_id="refused")
    with faults_installed() as faults:
        faults.add(order.pk, times=1, errno=1644)
        command(expect=1)
    assert (last().outcome, last().failed) == ("failed", 1)


def test_circuit_open_run_is_recorded(trading) -> None:
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 1})
    stale_order()
    stale_order()
    command(expect=3)
    assert (last().outcome, last().cancelled) == ("circuit_open", 0)


@contextmanager
def another_run_holds_the_lock() -> Iterator[None]:
    connection = connections[trading_alias()]
    if connection.vendor != "mysql":
        with sweep_lock(using=trading_alias()):  # flock: a second open file conflicts
            yield
        return
    # GET_LOCK belongs to a connection: take it from a second, raw one, as another run would.
    import MySQLdb

    params = connection.get_connection_params()
    other = MySQLdb.connect(**{k: v for k, v in params.items() if k != "conv"})
    try:
        cursor = other.cursor()
        cursor.execute("SELECT GET_LOCK(%s, 0)", [f"{connection.settings_dict['NAME']}.{LOCK_NAME}"])
        assert cursor.fetchone()[0] == 1
        yield
    finally:
        other.close()


def test_lock_held_run_is_recorded(trading) -> None:
    with another_run_holds_the_lock():
        assert "holds the lock" in command()
    assert last().outcome == "lock_held"
    assert "scanned 0" in command()  # released: the next run works


def test_admin_run_is_recorded_with_its_actor(trading) -> None:
    order = stale_order()
    sweep_run_recorded(now=CLOCK, actor="admin:ops", order_ids=[order.pk])
    assert (last().actor, last().outcome, last().replaced) == ("admin:ops", "ok", 1)


def test_dry_runs_leave_no_heartbeat(trading) -> None:
    stale_order()
    command("--dry-run")
    assert SweepRun.objects.count() == 0
    assert TradeOrder.objects.filter(status="NEW").count() == 1


def test_prune_deletes_only_rows_past_the_retention(trading, settings) -> None:  # noqa: ANN001
    settings.RECOVERY_HEARTBEAT_RETENTION_DAYS = 14
    for days in (20, 15, 13, 1):
        started = CLOCK - dt.timedelta(days=days)
        factories.SweepRunFactory(started_at=started, duration_seconds=0.1)
    assert heartbeat_prune(now=CLOCK) == 2
    kept = sorted((CLOCK - r.started_at).days for r in SweepRun.objects.all())
    assert kept == [1, 13]


def test_the_command_prunes(trading) -> None:
    old = CLOCK - dt.timedelta(days=30)
    factories.SweepRunFactory(started_at=old, duration_seconds=1)
    command()
    assert not SweepRun.objects.filter(started_at=old).exists()
    assert SweepRun.objects.count() == 1
