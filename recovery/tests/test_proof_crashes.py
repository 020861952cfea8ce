"""Proof, part 2: `manage.py auto_recover` killed with SIGKILL at random moments.

docs/design.md, "Writing it down" and "Guarantees": cancel, replacement and their audit rows commit
in one transaction per order, so a run killed anywhere — before its first write, between
two orders, inside an order's transaction, after its last — leaves no order cancelled
whose replacement was due and not written, no replacement twice, no audit row without its
fact. After every kill the invariants are read with SQL; then normal runs finish the job.

Sizes, for under a minute on an idle 2-core machine (about two when another suite shares
it): 1,000 orders; 24 to 30 killed runs of `--limit 10..40` — one manage.py start costs
~1.3 s, its writes ~6 ms an order, so a run lasts ~2 s — leaving about half of the work
to the normal run at the end (~4 s).
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP
from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
from recovery.tests import factories
from recovery.tests.proof_worker import WAIT_SECONDS, Pack, Process

pytestmark = [pytest.mark.mysql, pytest.mark.processes]

SEED = 600_24
MIN_KILLS, MAX_KILLS = 24, 30
PHASES, EACH_PHASE = ("before", "during", "after"), 2  # kill on until each phase was hit twice
LIMITS = (10, 40)
CALIBRATION_LIMIT = 40
QUOTES = {"AAPL": 100.0, "MSFT": 100.0}
# What each kind of order ends as once the job is done: (status, reason, replaced).
KINDS: dict[str, tuple[int, tuple[str, str | None, bool]]] = {
    "mkt": (500, ("CANCELED", "replaced", True)),
    "lmt_near": (160, ("CANCELED", "replaced", True)),  # 0.5 % from its quote
    "peg_near": (40, ("CANCELED", "replaced", True)),
    "lmt_far": (60, ("CANCELED", "price_deviation", False)),  # 10 % from its quote
    "lmt_no_quote": (40, ("CANCELED", "quote_unavailable", False)),
    "invalid": (100, ("CANCELED", "invalid_order", False)),
    "open_at_broker": (10, ("NEW", None, False)),
    "submit_in_flight": (10, ("NEW", None, False)),
    "acknowledged": (40, ("NEW", None, False)),  # NEW with an ib_order_id: never a candidate
    "filled": (40, ("NEW", None, False)),  # NEW with a partial fill: never a candidate
}

CANCELLED_BY_SWEEP = "JSON_EXTRACT({t}.params, '$.auto_recovery_cancel') = 'true'"
ORIGIN = "JSON_VALUE({t}.params, '$.auto_recovery.origin_order_id')"
LAST_ACTION = "JSON_VALUE({t}.params, '$.auto_recovery.last_action')"
REPLACEMENTS = f"SELECT id, CAST({ORIGIN.format(t='x')} AS INTEGER) AS origin FROM trade_orders x"
# Each query lists what breaks a guarantee: every one must return no row.
BROKEN: dict[str, str] = {
    "cancelled for a replacement that was not written": f"""
        SELECT o.id FROM trade_orders o LEFT JOIN ({REPLACEMENTS}) r ON r.origin = o.id
        WHERE {LAST_ACTION.format(t="o")} = 'replace' AND r.id IS NULL""",
    "replacement whose origin is not CANCELED for a replace": f"""
        SELECT r.id FROM ({REPLACEMENTS}) r LEFT JOIN trade_orders o ON o.id = r.origin
        WHERE r.origin IS NOT NULL AND (o.id IS NULL OR o.status <> 'CANCELED'
          OR NOT {CANCELLED_BY_SWEEP.format(t="o")} OR {LAST_ACTION.format(t="o")} <> 'replace')""",
    "two replacements for one order": f"""
        SELECT r.origin FROM ({REPLACEMENTS}) r WHERE r.origin IS NOT NULL
        GROUP BY r.origin HAVING COUNT(*) > 1""",
    "marked cancelled by the sweep but not CANCELED": f"""
        SELECT o.id FROM trade_orders o
        WHERE {CANCELLED_BY_SWEEP.format(t="o")} AND o.status <> 'CANCELED'""",
    "cancelled by the sweep without exactly one cancel audit row": f"""
        SELECT o.id FROM trade_orders o
        LEFT JOIN audit_logs a ON a.action = '{ACTION_CANCEL}' AND a.resource_id = o.id
        WHERE {CANCELLED_BY_SWEEP.format(t="o")} GROUP BY o.id HAVING COUNT(a.id) <> 1""",
    "cancel audit row without its cancelled order, or with another decision": f"""
        SELECT a.id FROM audit_logs a LEFT JOIN trade_orders o ON o.id = a.resource_id
        WHERE a.action = '{ACTION_CANCEL}' AND (o.id IS NULL OR NOT {CANCELLED_BY_SWEEP.format(t="o")}
          OR JSON_VALUE(a.detail, '$.decision') <> {LAST_ACTION.format(t="o")})""",
    "replacement without exactly one replace audit row": f"""
        SELECT r.id FROM ({REPLACEMENTS}) r
        LEFT JOIN audit_logs a ON a.action = '{ACTION_REPLACE}' AND a.resource_id = r.id
        WHERE r.origin IS NOT NULL GROUP BY r.id HAVING COUNT(a.id) <> 1""",
    "replace audit row without its replacement": f"""
        SELECT a.id FROM audit_logs a LEFT JOIN ({REPLACEMENTS}) r ON r.id = a.resource_id
        WHERE a.action = '{ACTION_REPLACE}'
          AND (r.id IS NULL OR r.origin <> CAST(JSON_VALUE(a.detail, '$.origin_order_id') AS INTEGER))""",
    "duplicate client_order_id": """
        SELECT client_order_id FROM trade_orders GROUP BY client_order_id HAVING COUNT(*) > 1""",
    "acknowledged or filled order cancelled": """
        SELECT id FROM trade_orders WHERE status = 'CANCELED'
          AND (ib_order_id IS NOT NULL OR ib_perm_id IS NOT NULL OR filled_quantity <> 0)""",
}
COUNTS = f"""
    SELECT
      (SELECT COUNT(*) FROM trade_orders o WHERE {CANCELLED_BY_SWEEP.format(t="o")}),
      (SELECT COUNT(*) FROM audit_logs WHERE action = '{ACTION_CANCEL}'),
      (SELECT COUNT(*) FROM ({REPLACEMENTS}) r WHERE r.origin IS NOT NULL),
      (SELECT COUNT(*) FROM audit_logs WHERE action = '{ACTION_REPLACE}')"""


def invariants_check() -> dict[str, int]:
    """Assert every guarantee on the committed rows; return the counts."""
    with connections[trading_alias()].cursor() as cursor:
        broken = {}
        for name, sql in BROKEN.items():
            cursor.execute(sql)
            rows = cursor.fetchall()
            if rows:
                broken[name] = [row[0] for row in rows[:20]]
        cursor.execute(COUNTS)
        cancelled, cancel_rows, replacements, replace_rows = cursor.fetchone()
    assert broken == {}
    assert cancel_rows == cancelled
    assert replace_rows == replacements
    return {"cancelled": cancelled, "replacements": replacements}


def orders_create(rng: random.Random, *, now: dt.datetime) -> dict[int, str]:
    """The mix of KINDS, stale for an hour or two, shuffled so every --limit batch holds a mix.

    All of them orders of one finished run (re-placed as direct orders, replace_run_orders):
    a thousand stale direct orders would stand in the backend's loop queue ahead of every
    replacement (rule 10b), and runs of 10 to 40 orders could never clear it.
    """
    run_id = factories.TradeRunFactory(status="done").pk
    kinds = [kind for kind, (count, _) in KINDS.items() for _ in range(count)]
    rng.shuffle(kinds)
    requested = now.isoformat().replace("+00:00", "Z")
    orders = []
    for i, kind in enumerate(kinds):
        created = now - dt.timedelta(seconds=7200 - i)
        fields: dict[str, Any] = {
            "client_order_id": f"crash-{i:05d}-{kind}",
            "params": {"strategy": "proof"},
            "run_id": run_id,
        }
        if kind in ("lmt_near", "lmt_far", "lmt_no_quote", "peg_near"):
            symbol = {"lmt_far": "MSFT", "lmt_no_quote": "ZZZZ"}.get(kind, "AAPL")
            fields.update(order_type="PEG_MID" if kind == "peg_near" else "LMT", symbol=symbol)
            fields["limit_price"] = 110.0 if kind == "lmt_far" else 100.5
        elif kind == "invalid":
            fields.update(rng.choice([{"side": "HOLD"}, {"quantity": 0.0}, {"order_type": "LMT"}]))
        elif kind == "submit_in_flight":
            # From the short-lived fallback: a leader command would make it the backend's (3b).
            command = {"pending": True, "requested_at": requested, "source": "short_lived_fallback"}
            fields["params"] = {"submit_command": command}
        elif kind == "acknowledged":
            fields["ib_order_id"] = 5_000_000 + i
        elif kind == "filled":
            fields["filled_quantity"] = 3.0
        orders.append(factories.TradeOrderFactory.build(created_at=created, updated_at=created, **fields))
    TradeOrder.objects.bulk_create(orders)
    return {o.pk: o.client_order_id.rsplit("-", 1)[1] for o in TradeOrder.objects.all()}


def bridge_refresh(bridge: Any, kinds: dict[int, str]) -> None:
    """Fresh quotes and open orders for the next run (the sweep trusts them for 60 s / 30 s)."""
    at = timezone.now() - dt.timedelta(seconds=1)
    bridge.quotes(QUOTES, at=at)
    tags = TradeOrder.objects.filter(pk__in=[i for i, k in kinds.items() if k == "open_at_broker"])
    bridge.open_orders(list(tags.values_list("client_order_id", flat=True)), at=at)


def connection_ids() -> set[int]:
    name = connections[trading_alias()].settings_dict["NAME"]
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", [name])
        return {row[0] for row in cursor.fetchall()}


def server_forgot(before: set[int]) -> None:
    """Wait until the server dropped the dead run's connection: its transaction rolled back."""
    deadline = time.monotonic() + WAIT_SECONDS
    while connection_ids() - before:
        assert time.monotonic() < deadline, "the killed run's connection never went away"
        time.sleep(0.01)


def id_gaps() -> int:
    """Ids handed out past the last committed row of trade_orders and audit_logs.

    InnoDB never takes an AUTO_INCREMENT value back: a replacement or audit insert whose
    transaction died with the process leaves a gap at the end of its table (the server
    is shared, so its global rollback counters would not tell this run apart).
    """
    name = connections[trading_alias()].settings_dict["NAME"]
    gaps = 0
    with connections[trading_alias()].cursor() as cursor:
        for table in ("trade_orders", "audit_logs"):
            cursor.execute(
                "SELECT AUTO_INCREMENT FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                [name, table],
            )
            (next_id,) = cursor.fetchone()
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            gaps += next_id - 1 - cursor.fetchone()[0]
    return gaps


def audit_rows(action: str = ACTION_CANCEL) -> int:
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM audit_logs WHERE action = %s", [action])
        return cursor.fetchone()[0]


def backend_sends() -> int:
    """The backend's direct-order loop, as far as these runs need it: every replacement that
    waits for it is sent (SUBMITTED, its retry no longer pending) and so leaves the loop's
    queue, which would otherwise hold the next runs' replacements (rule 10b)."""
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(
            "UPDATE trade_orders SET status = 'SUBMITTED', "
            "params = JSON_SET(params, '$.direct_retry.pending', false) WHERE run_id IS NULL "
            "AND status = 'NEW' AND JSON_EXTRACT(params, '$.direct_retry.pending') = 'true'"
        )
        return cursor.rowcount


def calibrate(pack: Pack) -> dict[str, float]:
    """One whole run: when (from its start) its writes begin, how long an order takes, when it ends."""
    start, before = time.monotonic(), audit_rows()
    command = pack.manage("calibration", "auto_recover", "--json", "--limit", str(CALIBRATION_LIMIT))
    first = last = None
    seen = before
    while command.popen.poll() is None:
        now, count = time.monotonic() - start, audit_rows()
        if count > seen:
            first, last, seen = first or now, now, count
        time.sleep(0.003)
    ended = time.monotonic() - start
    output = command.json()
    assert output["cancelled"] == audit_rows() - before > 1
    assert first is not None and last is not None
    return {"first_write": first, "per_order": (last - first) / (output["cancelled"] - 1), "exit": ended}


@dataclass(frozen=True)
class KillPlan:
    aim: str
    delay: float  # seconds after the start, or after `rows` new audit rows of `action` appeared
    action: str | None = None
    rows: int = 0


def kill_plan(rng: random.Random, timing: dict[str, float], *, limit: int) -> KillPlan:
    """Aim before, during or after the writes; where a kill lands is measured, not assumed.

    A start varies by a few 100 ms on a busy 2-core machine, more than a run's writes take,
    so "during" and "after" watch the audit table: "during" waits for a random number of
    committed orders, then up to one order's time (between two orders or inside one's
    transaction); "after" waits for the sweep's summary row, written after its last order,
    then up to 50 ms (heartbeat, JSON output, exit).
    """
    aim = rng.choice(["before", "during", "during", "after"])
    if aim == "before":
        return KillPlan(aim, rng.uniform(0.1, 0.95) * timing["first_write"])
    if aim == "during":
        return KillPlan(aim, rng.uniform(0, timing["per_order"]), ACTION_CANCEL, rng.randint(1, limit - 1))
    return KillPlan(aim, rng.uniform(0, 0.05), ACTION_SWEEP, 1)


def test_killed_runs_leave_no_broken_chain_and_a_normal_run_finishes(
    committed_db,  # noqa: ANN001
    bridge,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """Any wall clock: the settings allow re-placing outside regular hours; the orders are
    stamped by this process's clock, which the processes share.
    """
    rng = random.Random(SEED)
    print(f"\nseed {SEED}")
    factories.TradeSettingsFactory(
        auto_recovery={
            "max_replacements_per_sweep": 1000,
            "max_replacements_per_hour": 10000,
            "allow_replace_outside_rth": True,  # the command reads the real clock
            "replace_same_trading_day_only": False,  # an hour back may be yesterday in New York
            "new_timeout_seconds": 600,  # replacements made here never turn stale meanwhile
            "replace_run_orders": True,  # the run has no decision snapshot: never resumed
        }
    )
    factories.IbSettingsFactory()
    kinds = orders_create(rng, now=timezone.now())
    pack = Pack(tmp_path, LEAN_BRIDGE_ROOT=str(bridge.root), AUTO_RECOVER_LOCK_DIR=str(tmp_path))

    bridge_refresh(bridge, kinds)
    timing = calibrate(pack)
    backend_sends()
    invariants_check()
    landed: Counter[str] = Counter()
    kills = 0
    while kills < MIN_KILLS or (kills < MAX_KILLS and min(landed[p] for p in PHASES) < EACH_PHASE):
        limit = rng.randint(*LIMITS)
        plan = kill_plan(rng, timing, limit=limit)
        bridge_refresh(bridge, kinds)
        landing = kill_once(pack, f"run-{kills}", limit=limit, plan=plan)
        backend_sends()
        landed[landing["where"]] += 1
        landed["killed after the writes"] += landing["where"] == "after" and landing["killed"]
        landed["inside a transaction"] += landing["torn"]
        counts = invariants_check()
        waited = f"{plan.rows} {plan.action.rsplit('.', 1)[1]} rows + " if plan.action else ""
        aimed = f"{waited}{plan.delay:.3f} s"
        print(f"kill {kills:2d}: --limit {limit:2d}, aimed {plan.aim} ({aimed}): {landing}, {counts}")
        kills += 1
    # Where a random kill lands inside an order's transaction is luck (3 of 24 here); one
    # kill lands there every time: held inside an order's transaction, after its cancel
    # and its replacement's insert, before its audit rows and its commit.
    bridge_refresh(bridge, kinds)
    inside = kill_inside_a_transaction(pack)
    landed["inside a transaction"] += inside["rows_modified"] >= 1
    print(f"kill {kills:2d}: held inside an order's transaction: {inside}, {invariants_check()}")

    finish_and_assert(pack, bridge, kinds)
    print(f"calibration {timing}; {kills + 1} kills landed: {dict(landed)}")
    assert all(landed[p] for p in PHASES), landed
    # Killed with the order's cancel applied, uncommitted; after it: NEW, nothing written.
    # (`torn`, an id gap, shows only when that order was to be re-placed: its insert's id.)
    assert inside["rows_modified"] >= 1 and inside["written"] == 0 and inside["order_status"] == "NEW", inside


def kill_once(pack: Pack, name: str, *, limit: int, plan: KillPlan) -> dict[str, Any]:
    """Start a run, SIGKILL it as planned (unless it ended first), and say where that landed."""
    before_ids, before_cancels, before_sweeps = connection_ids(), audit_rows(), audit_rows(ACTION_SWEEP)
    before_gaps = id_gaps()
    run = pack.manage(name, "auto_recover", "--json", "--limit", str(limit))
    at = kill_after(run, plan)
    server_forgot(before_ids)
    written = audit_rows() - before_cancels
    if run.popen.returncode != -signal.SIGKILL:
        output = run.json()  # it ended by itself: its own report must match the rows
        assert (output["cancelled"], output["failed"]) == (written, 0)
        return {"where": "after", "killed": False, "at": round(at, 3), "written": written, "torn": False}
    # Its summary row is written after the last order: killed past it is after the writes.
    where = "after" if audit_rows(ACTION_SWEEP) > before_sweeps else "during" if written else "before"
    # A run that committed something closed older gaps: any gap left now is its own.
    torn = id_gaps() > (0 if written else before_gaps)
    return {"where": where, "killed": True, "at": round(at, 3), "written": written, "torn": torn}


def kill_after(run: Process, plan: KillPlan) -> float:
    """SIGKILL the run as planned unless it ended by itself; seconds from its start to the end."""
    started = time.monotonic()
    if plan.action is not None:
        target = audit_rows(plan.action) + plan.rows
        while run.popen.poll() is None and audit_rows(plan.action) < target:
            assert time.monotonic() - started < WAIT_SECONDS, "the run never wrote"
            time.sleep(0.002)
    deadline = (time.monotonic() if plan.action is not None else started) + plan.delay
    try:
        run.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        run.popen.send_signal(signal.SIGKILL)
        run.popen.wait()
    return time.monotonic() - started


HOLD_TRIGGER = f"""
CREATE TRIGGER test_hold_before_audit BEFORE INSERT ON audit_logs FOR EACH ROW
BEGIN
  IF NEW.action = '{ACTION_CANCEL}' AND (SELECT armed FROM test_hold LIMIT 1) = 1 THEN
    UPDATE test_hold SET held_order = NEW.resource_id;
    DO SLEEP(600);
  END IF;
END
"""


def kill_inside_a_transaction(pack: Pack) -> dict[str, Any]:
    """SIGKILL a run while its first order's audit insert is held by a trigger.

    By then the order is locked, cancelled and its replacement inserted, none of it
    committed. The client dies; the server's thread sleeps on until told (it would notice
    the dead socket only at its next read): KILL ends it, and the transaction rolls back.
    """
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS test_hold")
        # MyISAM: what the trigger notes outlives the rollback.
        cursor.execute("CREATE TABLE test_hold (armed INT NOT NULL, held_order INT NULL) ENGINE=MyISAM")
        cursor.execute("INSERT INTO test_hold VALUES (1, NULL)")
        cursor.execute("DROP TRIGGER IF EXISTS test_hold_before_audit")
        cursor.execute(HOLD_TRIGGER)
    try:
        before_ids, before_cancels = connection_ids(), audit_rows()
        run = pack.manage("held", "auto_recover", "--json", "--limit", "5")
        held = held_connection(run)
        with connections[trading_alias()].cursor() as cursor:
            # What the held transaction has changed, uncommitted: the cancel at least (and the
            # replacement's insert when the order was to be re-placed).
            cursor.execute(
                "SELECT trx_rows_modified FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
                [held],
            )
            row = cursor.fetchone()
            rows_modified = row[0] if row else 0
        run.popen.send_signal(signal.SIGKILL)
        run.popen.wait()
        with connections[trading_alias()].cursor() as cursor:
            # The held statement locks test_hold (MyISAM, a table lock) until it ends.
            cursor.execute(f"KILL {held}")
            server_forgot(before_ids)
            cursor.execute("UPDATE test_hold SET armed = 0")
            cursor.execute("SELECT held_order FROM test_hold")  # noted by the trigger
            (order_id,) = cursor.fetchone()
        order_status = TradeOrder.objects.get(pk=order_id).status
        written = audit_rows() - before_cancels
        return {"written": written, "rows_modified": rows_modified, "torn": id_gaps() > 0,
                "order_status": order_status, "order_id": order_id}  # fmt: skip
    finally:
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_hold_before_audit")
            cursor.execute("DROP TABLE IF EXISTS test_hold")


def held_connection(run: Process) -> int:
    """The id of the run's connection once the trigger holds it."""
    name = connections[trading_alias()].settings_dict["NAME"]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        assert run.popen.poll() is None, f"the run ended before it was held:\n{run.stderr()[-2000:]}"
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND STATE = 'User sleep'"
                " AND INFO LIKE 'DO SLEEP(600)%%'",
                [name],
            )
            row = cursor.fetchone()
        if row is not None:
            return row[0]
        time.sleep(0.005)
    raise AssertionError("the run was never held inside an order's transaction")


def finish_and_assert(pack: Pack, bridge: Any, kinds: dict[int, str]) -> None:
    """Normal runs finish the job: every order ends as its kind says, a further run does nothing."""
    for attempt in range(10):  # the backend's loop queue takes up to 150 replacements a run
        bridge_refresh(bridge, kinds)
        final = pack.manage(f"final-{attempt}", "auto_recover", "--json", "--limit", "1000").json()
        assert final["failed"] == 0 and not final["circuit_open"]
        backend_sends()
        if not final["reasons"].get("backend_sender_unavailable"):
            break
    counts = invariants_check()
    bridge_refresh(bridge, kinds)
    sweep_rows = audit_rows(ACTION_SWEEP)
    again = pack.manage("again", "auto_recover", "--json", "--limit", "1000").json()
    assert (again["cancelled"], again["failed"]) == (0, 0), again["reasons"]
    assert set(again["reasons"]) == {"open_at_broker", "submit_in_flight"}
    assert invariants_check() == counts
    assert audit_rows(ACTION_SWEEP) == sweep_rows  # a sweep that only skipped writes no row

    orders = {o.pk: o for o in TradeOrder.objects.all()}
    replaced = {
        o.params["auto_recovery"]["origin_order_id"]
        for o in orders.values()
        if "origin_order_id" in (o.params.get("auto_recovery") or {})
    }
    for order_id, kind in kinds.items():
        status, reason, is_replaced = KINDS[kind][1]
        order = orders[order_id]
        assert order.status == status, (order_id, kind, order.status)
        assert (order.params.get("auto_recovery") or {}).get("last_reason") == reason, (order_id, kind)
        assert (order_id in replaced) is is_replaced, (order_id, kind)
    assert counts["replacements"] == sum(c for c, (_, _, r) in KINDS.values() if r)
    print(f"final run: {final['reasons']}; second run: {again['reasons']}")
