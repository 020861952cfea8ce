"""Acting on a true, current picture: fresh reads per chunk, the time budget, the clock gate.

No test here reads the wall clock for its outcome: the sweep's clock is a HandClock the test
moves (services.clock's SweepClock moves with real time in production), and the clock gate's
tests move this process's clock relative to the database server's own.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction

from recovery import selectors as selectors_module
from recovery.db.audit import ACTION_CANCEL
from recovery.db.checks import trading_schema_check
from recovery.db.models import AuditLog, SweepRun, TradeOrder, TradeSettings
from recovery.db.routers import trading_alias
from recovery.db.timestamps import iso_utc
from recovery.services import fresh as fresh_module
from recovery.services import plan as plan_module
from recovery.services import sweep as sweep_module
from recovery.services import sweep_run
from recovery.services.order import PictureStale, SweepContext, order_recover
from recovery.services.plan import sweep_plan
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.decisions import Action, Reason
from recovery.sweep.results import SweepResult
from recovery.tests.conftest import CLOCK, stale_order


class HandClock:
    """The sweep's clock, moved by the test: by hand (`move`) or a step at every reading."""

    def __init__(self, start: dt.datetime, *, step: float = 0.0) -> None:
        self.at, self.step, self.readings = start, dt.timedelta(seconds=step), 0

    def __call__(self) -> dt.datetime:
        self.readings += 1
        self.at += self.step
        return self.at

    def move(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


def filled_line(tag: str, at: dt.datetime) -> dict[str, Any]:
    """A Filled execution event as the Lean bridge writes it."""
    return {"tag": tag, "status": "Filled", "order_id": 7, "filled": 10, "fill_price": 101.5,
            "time": iso_utc(at), "symbol": "AAPL", "direction": "Buy"}  # fmt: skip


def after_the_plan(monkeypatch: pytest.MonkeyPatch, then: Callable[[], None]) -> None:
    """Run `then` right after the sweep's read-only first pass, before its first write."""
    real = plan_module.sweep_plan

    def planned(**kwargs: Any) -> Any:
        plan = real(**kwargs)
        then()
        return plan

    monkeypatch.setattr(sweep_module, "sweep_plan", planned)


def writes_take(monkeypatch: pytest.MonkeyPatch, clock: HandClock, seconds: float) -> None:
    """Each order's write takes `seconds` of the sweep's clock (a slow database, a long run)."""
    real = fresh_module.order_write

    def slow(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)
        clock.move(seconds)
        return outcome

    monkeypatch.setattr(fresh_module, "order_write", slow)


# --- every cancel on a fresh read ---------------------------------------------------------


def test_a_fill_written_after_the_plan_stops_the_cancel_when_the_read_has_aged(
    trading, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """The broker fills B after the first pass read its files; the first write comes 6 s later,
    past the 5 s bound: the run reads again, sees the fill and leaves B alone. (Acting on the
    first pass's read, as before, B was cancelled and re-placed: a doubled position.)
    """
    a = stale_order(client_order_id="fresh-a", params={"broker_order_tag": "tag-a"})
    b = stale_order(client_order_id="fresh-b", params={"broker_order_tag": "tag-b"})
    clock = HandClock(CLOCK)

    def broker_fills_b_and_time_passes() -> None:
        trading.events([filled_line("tag-b", CLOCK)])
        clock.move(6)

    after_the_plan(monkeypatch, broker_fills_b_and_time_passes)
    result = sweep_run(now=CLOCK, actor="test", clock=clock)

    by_id = {o.id: o for o in result.orders}
    assert by_id[a.pk].reason is Reason.REPLACED
    assert by_id[b.pk].decision is Action.SKIP and by_id[b.pk].reason is Reason.SEEN_BY_BROKER
    assert TradeOrder.objects.get(pk=b.pk).status == "NEW"
    assert result.evidence_reads_again == 1


def test_a_read_still_fresh_is_acted_on_without_reading_again(trading) -> None:  # noqa: ANN001
    """Within the bound the first pass's read serves: no second read of the broker's files."""
    orders = [stale_order(client_order_id=f"quick-{i}") for i in range(3)]
    result = sweep_run(now=CLOCK, actor="test", clock=HandClock(CLOCK, step=0.01))
    assert result.replaced == len(orders)
    assert result.evidence_reads_again == 0


def test_a_long_run_reads_again_in_chunks_and_stamps_each_write_at_its_moment(
    trading, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Each write takes 2 s: the read is 0, 2 and 4 s old at the first three orders, 6 s at
    the fourth, so the run reads again before the fourth and the seventh; each row carries
    the moment of its own write.
    """
    originals = [stale_order(client_order_id=f"slow-{i}") for i in range(8)]
    clock = HandClock(CLOCK)
    writes_take(monkeypatch, clock, 2)
    result = sweep_run(now=CLOCK, actor="test", clock=clock)
    assert result.replaced == len(originals)
    assert result.evidence_reads_again == 2
    stamps = sorted(TradeOrder.objects.filter(status="CANCELED").values_list("updated_at", flat=True))
    assert stamps == [CLOCK + dt.timedelta(seconds=2 * i) for i in range(8)]


def test_under_the_row_lock_a_read_older_than_the_bound_rolls_the_order_back(trading) -> None:  # noqa: ANN001
    """The lock itself may come late (another writer held the row): the order is not cancelled
    on the old read; PictureStale rolls its transaction back and the writer reads again.
    """
    order = stale_order(client_order_id="late-lock")
    config = AutoRecoveryConfig()
    plan = sweep_plan(config=config, now=CLOCK, limit=10, order_ids=None)
    snapshot, decision = plan.decided[0]
    assert decision.reason is Reason.REPLACED
    result = SweepResult(sweep_id="s", actor="test", dry_run=False, now=CLOCK, settings=config,
                         settings_warnings=[], gates={})  # fmt: skip
    context = SweepContext(gates=plan.state, config=config, runs=plan.runs, result=result,
                           clock=HandClock(CLOCK + dt.timedelta(seconds=6)), read_at=CLOCK)  # fmt: skip
    with pytest.raises(PictureStale), transaction.atomic(using=trading_alias()):
        order_recover(snapshot, decision, context=context)
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"
    assert TradeOrder.objects.count() == 1 and not AuditLog.objects.filter(action=ACTION_CANCEL).exists()


# --- the time budget ----------------------------------------------------------------------


def test_past_the_time_budget_no_new_order_is_started_and_the_run_says_what_it_left(
    trading, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Writes of 5 s each and a 12 s budget: three orders start (at 0, 5 and 10 s), three wait."""
    for i in range(6):
        stale_order(client_order_id=f"budget-{i}")
    clock = HandClock(CLOCK)
    writes_take(monkeypatch, clock, 5)
    result = sweep_run(now=CLOCK, actor="test", clock=clock, max_seconds=12)
    assert (result.cancelled, result.replaced) == (3, 3)
    assert result.left_for_next_run == 3
    assert (
        TradeOrder.objects.filter(status="NEW", client_order_id__startswith="budget-")
        .exclude(client_order_id__contains="-r")
        .count()
        == result.left_for_next_run
    )
    assert "time budget of 12 s spent" in result.out_of_time
    assert result.as_dict()["left_for_next_run"] == result.left_for_next_run


def test_a_first_pass_that_cannot_finish_in_time_writes_nothing(trading) -> None:  # noqa: ANN001
    """The breaker rests on the first pass over the whole backlog: unfinished, it proves
    nothing (`--limit 1` makes the pass page through the backlog one order at a time).
    """
    for i in range(5):
        stale_order(client_order_id=f"pass-{i}")
    result = sweep_run(now=CLOCK, actor="test", limit=1, clock=HandClock(CLOCK, step=3), max_seconds=5)
    assert result.cancelled == 0 and result.left_for_next_run == 1
    assert "first pass" in result.out_of_time
    assert TradeOrder.objects.filter(status="NEW").count() == 5


@pytest.mark.parametrize("bad", [0, -1, True, "50", float("nan")])
def test_a_bad_time_budget_is_refused(trading, bad: object) -> None:  # noqa: ANN001
    stale_order()
    with pytest.raises(ValueError, match="max_seconds"):
        sweep_run(now=CLOCK, actor="test", max_seconds=bad)  # type: ignore[arg-type]
    assert TradeOrder.objects.get().status == "NEW"


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "86401"])
def test_the_commands_max_seconds_refuses_bad_values(trading, bad: str) -> None:  # noqa: ANN001
    with pytest.raises(CommandError, match="max-seconds"):
        call_command("auto_recover", "--max-seconds", bad)


# --- the clock gate (rule 1c), on the real server's clock ---------------------------------


def database_utc_now() -> dt.datetime:
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute("SELECT UTC_TIMESTAMP(6)")
        return cursor.fetchone()[0].replace(tzinfo=dt.UTC)


@pytest.mark.mysql
@pytest.mark.parametrize("host_ahead", [60, -60])
def test_a_host_clock_a_minute_off_the_databases_changes_nothing_and_exits_5(
    trading, settings, host_ahead: int
) -> None:  # noqa: ANN001
    """This process's clock is moved a minute off the server's (whatever either reads): an
    order written a second ago would look a minute old. The run changes nothing, says why,
    exits 5 and records the outcome.
    """
    import time_machine  # a test dependency (requirements-dev.txt)

    settings.AUTO_RECOVER_CLOCK_TOLERANCE_SECONDS = 5
    db_now = database_utc_now()
    order = stale_order(clock=db_now, age=300)
    out, err = io.StringIO(), io.StringIO()
    with time_machine.travel(db_now + dt.timedelta(seconds=host_ahead), tick=True):
        with pytest.raises(SystemExit) as raised:
            call_command("auto_recover", "--json", stdout=out, stderr=err)
    assert raised.value.code == 5
    # The first run blocked by the clocks: one line on stderr, naming the gap.
    assert err.getvalue().count("\n") == 1 and "the database's clock is" in err.getvalue()
    shown = json.loads(out.getvalue())
    assert shown["clock_skew"] and shown["cancelled"] == 0 and shown["reasons"] == {"clock_skew": 1}
    assert abs(shown["gates"]["clock"]["database_minus_host_seconds"] + host_ahead) < 5
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"
    run = SweepRun.objects.get()
    assert (run.outcome, run.blocked_by) == (SweepRun.Outcome.BLOCKED, "clock_skew")


@pytest.mark.mysql
def test_clocks_within_the_tolerance_let_the_run_act(trading, settings) -> None:  # noqa: ANN001
    import time_machine

    settings.AUTO_RECOVER_CLOCK_TOLERANCE_SECONDS = 5
    TradeSettings.objects.update(auto_recovery={"allow_replace_outside_rth": True,
                                                "replace_same_trading_day_only": False})  # fmt: skip
    db_now = database_utc_now()
    order = stale_order(clock=db_now, age=300)
    with time_machine.travel(db_now + dt.timedelta(seconds=2), tick=True):
        call_command("auto_recover", "--json", stdout=(out := io.StringIO()))
    assert json.loads(out.getvalue())["replaced"] == 1
    assert TradeOrder.objects.get(pk=order.pk).status == "CANCELED"


@pytest.mark.mysql
def test_check_warns_when_the_servers_now_is_not_utc(transactional_db) -> None:  # noqa: ANN001
    """The DDL's DEFAULT CURRENT_TIMESTAMP writes the server's NOW(): local time under a
    non-UTC time_zone, which every age would then be off by."""
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.time_zone")
        before = cursor.fetchone()[0]
        cursor.execute("SET GLOBAL time_zone = '-05:00'")
        try:
            warned = [m for m in trading_schema_check() if m.id == "recovery.W003"]
        finally:
            cursor.execute("SET GLOBAL time_zone = %s", [before])
    assert len(warned) == 1 and "-5 h from UTC" in warned[0].msg
    assert not [m for m in trading_schema_check() if m.id == "recovery.W003"]


def test_an_order_rolled_back_for_a_late_lock_takes_no_second_replacement_slot(
    trading, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """The first order's lock comes too late once (PictureStale), then it is written: the
    breaker weighed two replacements and both orders get theirs (counting the retried order
    twice held the last one as circuit_open)."""
    first, second = stale_order(client_order_id="late-1", age=130), stale_order(client_order_id="late-2")
    real = fresh_module.order_write
    late = [first.pk]

    def late_once(snapshot: Any, *args: Any, **kwargs: Any) -> Any:
        if snapshot.id in late:
            late.remove(snapshot.id)
            raise PictureStale(snapshot.id)
        return real(snapshot, *args, **kwargs)

    monkeypatch.setattr(fresh_module, "order_write", late_once)
    result = sweep_run(now=CLOCK, actor="test", clock=HandClock(CLOCK))
    assert {o.id: o.reason for o in result.orders} == {first.pk: Reason.REPLACED, second.pk: Reason.REPLACED}
    assert result.evidence_reads_again == 1  # the retried order was read again first


def test_a_read_again_slower_than_the_bound_stops_the_run_instead_of_reading_forever(
    trading, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """After the plan the broker's files take 6 s to read (a hung mount): each read is stale
    on arrival, so the run leaves the rest NEW and says why, once, instead of reading again
    until its budget (here 100 s: 16 more reads)."""
    for i in range(2):
        stale_order(client_order_id=f"slow-read-{i}")
    clock = HandClock(CLOCK)
    real = selectors_module.evidence_get

    def slow(**kwargs: Any) -> Any:
        clock.move(6)
        return real(**kwargs)

    def then() -> None:
        clock.move(6)  # the plan's read has aged: the writer reads again, slowly
        monkeypatch.setattr(selectors_module, "evidence_get", slow)

    after_the_plan(monkeypatch, then)
    result = sweep_run(now=CLOCK, actor="test", clock=clock, max_seconds=100)
    assert (result.cancelled, result.left_for_next_run, result.evidence_reads_again) == (0, 2, 1)
    assert "reading the broker's files again took 6.0 s, longer than the 5 s" in result.out_of_time
    assert TradeOrder.objects.filter(status="NEW").count() == 2
