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
        with pytest.raises((CommandError, SystemExit)) as raised:
            call_command("auto_recover", *args, now=CLOCK, stdout=out, stderr=io.StringIO())
        code = raised.value.returncode if isinstance(raised.value, CommandError) else raised.value.code
        assert code == expect
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
    assert (last().outcome, last().cancelled) == ("breaker_open", 0)


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


# --- the state a run ends in, and the one line per change ------------------------------


def cron(*args: str, minute: int = 0) -> tuple[int, str, str]:
    """auto_recover as cron runs it (-v 0): exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    now = CLOCK + dt.timedelta(minutes=minute)
    try:
        call_command("auto_recover", "-v", "0", *args, now=now, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), out.getvalue(), err.getvalue()
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue() + str(exc)
    return 0, out.getvalue(), err.getvalue()


def test_a_blind_sweep_is_blocked_exits_5_and_says_so_once_until_it_is_ok_again(trading) -> None:
    """The bridge root missing: no run reads "ok". Each exits 5; one stderr line at the
    change, none while it stays so; one when it is ok again, then none."""
    import shutil

    order = stale_order()
    shutil.rmtree(trading.root)
    told = []
    for minute in range(3):
        code, out, err = cron(minute=minute)
        assert (code, out) == (5, "")
        told.append(err)
    assert told[1:] == ["", ""]
    assert told[0].count("\n") == 1
    assert "blocked" in told[0] and f"the bridge root {trading.root} does not exist" in told[0]
    runs = list(SweepRun.objects.order_by("id"))
    assert [(r.outcome, r.blocked_by) for r in runs] == [("blocked", "broker_evidence_unavailable")] * 3
    assert f"{trading.root} does not exist on this host; nothing was changed" in runs[0].message
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"

    trading.root.mkdir()
    code, out, err = cron(minute=3)
    assert (code, out) == (0, "") and err.count("\n") == 1 and err.startswith("auto_recover is ok again")
    assert TradeOrder.objects.get(pk=order.pk).status == "CANCELED"
    assert cron(minute=4) == (0, "", "")


def test_a_missing_bridge_root_blocks_even_an_idle_run_but_an_unprobed_gateway_does_not(trading) -> None:
    """No candidate: the gateway is not probed (unknown is not down), the bridge root is."""
    from recovery.db.models import IbSettings

    IbSettings.objects.update(port=1)  # nothing listens there
    assert cron() == (0, "", "")
    assert last().outcome == "ok"
    trading.root.rmdir()
    code, _, err = cron(minute=1)
    assert code == 5 and "does not exist" in err
    assert (last().outcome, last().blocked_by) == ("blocked", "broker_evidence_unavailable")


def test_a_change_of_gate_is_told_once(trading) -> None:
    from recovery.db.models import IbSettings

    stale_order()
    trading.root.rmdir()
    first = cron()
    IbSettings.objects.update(api_mode="ib", port=1)  # the gateway is checked before the bridge root
    second = cron(minute=1)
    third = cron(minute=2)
    assert [c for c, _, _ in (first, second, third)] == [5, 5, 5]
    assert "bridge root" in first[2] and "the IB gateway 127.0.0.1:1 is not reachable" in second[2]
    assert third[2] == ""
    assert [r.blocked_by for r in SweepRun.objects.order_by("id")] == [
        "broker_evidence_unavailable",
        "ib_unreachable",
        "ib_unreachable",
    ]


@pytest.mark.parametrize(
    "chosen", [{"enabled": False}, {"blackout_windows": [{"start": "00:00", "end": "23:59"}]}]
)
def test_disabled_and_blackout_are_ok_even_with_the_bridge_root_missing(trading, chosen) -> None:  # noqa: ANN001
    """Ops chose them: rules 1 and 1b come before the gates."""
    stale_order()
    trading.root.rmdir()
    TradeSettings.objects.update(auto_recovery=chosen)
    assert cron() == (0, "", "")
    assert (last().outcome, last().blocked_by) == ("ok", "")


def test_a_run_stopped_by_its_time_budget_is_over_budget_exit_6_told_once(trading) -> None:
    for _ in range(2):
        stale_order()
    told = []
    for minute in range(2):
        code, out, err = cron("--max-seconds", "0.000001", minute=minute)
        assert (code, out) == (6, "")
        told.append(err)
    assert told[0].count("\n") == 1 and "over its time budget" in told[0] and told[1] == ""
    run = last()
    assert run.outcome == "over_budget" and "left" in run.message
    assert TradeOrder.objects.filter(status="NEW").count() == 2


def test_the_breaker_is_told_by_its_own_line_not_twice(trading) -> None:
    """While open, exit 3 and no command line (the breaker's error line tells, once: see
    test_auto_recover); closed again, the breaker's line says so, the command adds none."""
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 1})
    stale_order()
    stale_order()
    assert [cron(minute=m) for m in range(3)] == [(3, "", "")] * 3
    assert [r.outcome for r in SweepRun.objects.order_by("id")] == ["breaker_open"] * 3
    TradeSettings.objects.update(auto_recovery={"max_replacements_per_sweep": 5})
    assert cron(minute=3) == (0, "", "")
    assert last().outcome == "ok"


def test_a_lock_held_run_does_not_count_as_the_previous_state(trading) -> None:
    import shutil

    stale_order()
    shutil.rmtree(trading.root)
    assert cron()[0] == 5
    with another_run_holds_the_lock():
        assert cron(minute=1) == (0, "", "")
    assert cron(minute=2) == (5, "", "")  # still blocked as before the lock_held run: not told again


def test_ok_again_after_a_failed_run_is_one_line_without_an_empty_message() -> None:
    from recovery.ops.runs import Outcome, state_change_line

    failed = SweepRun(outcome="failed", message="")
    line = state_change_line(previous=failed, outcome=Outcome.OK, blocked_by="", message="", result=None)
    assert line == "auto_recover is ok again (it was failed: an order could not be written)"
    assert (
        state_change_line(previous=None, outcome=Outcome.OK, blocked_by="", message="", result=None) is None
    )
    over = state_change_line(
        previous=SweepRun(outcome="ok"),
        outcome=Outcome.OVER_BUDGET,
        blocked_by="",
        message="2 left",
        result=None,
    )
    assert over == "auto_recover is now over its time budget: orders left for the next run — 2 left"
