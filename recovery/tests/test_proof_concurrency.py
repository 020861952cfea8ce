"""Proof, part 1: sweeps in separate processes, racing each other and the backend's executor.

test_concurrency.py races threads of one process; here every party is its own OS process
with its own connection, released together (recovery/tests/proof_worker.py), over
committed rows — what cron on several hosts, the admin and the trading backend do
(docs/design.md, "Several hosts" and "Guarantees").
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP, ACTOR_COMMAND
from recovery.db.locks import LOCK_NAME
from recovery.db.models import AuditLog, TradeOrder
from recovery.db.routers import trading_alias
from recovery.tests import factories
from recovery.tests.proof_worker import IB_ORDER_ID_BASE, WAIT_SECONDS, Pack, Process

pytestmark = [pytest.mark.mysql, pytest.mark.processes]

SEED = 20261128


def recovery_configured() -> None:
    factories.TradeSettingsFactory(
        auto_recovery={
            "max_replacements_per_sweep": 1000,
            "max_replacements_per_hour": 10000,
            "allow_replace_outside_rth": True,
            "replace_same_trading_day_only": False,
        }
    )
    factories.IbSettingsFactory()


def stale_orders_create(count: int, *, clock: dt.datetime) -> set[int]:
    """`count` committed MKT orders, NEW for an hour or so at `clock`."""
    orders = []
    for i in range(count):
        created = clock - dt.timedelta(seconds=3600 - i)
        orders.append(
            factories.TradeOrderFactory.build(
                client_order_id=f"proof-{i:05d}", created_at=created, updated_at=created
            )
        )
    TradeOrder.objects.bulk_create(orders)
    return set(TradeOrder.objects.values_list("id", flat=True))


def command_facts(output: dict[str, Any], *, started: float, ended: float) -> dict[str, Any]:
    """The command's --json output in the shape proof_worker reports."""
    acted = [o for o in output["orders"] if o["decision"] in ("cancel", "replace")]
    return {
        "actor": output["actor"],
        **{key: output[key] for key in ("scanned", "cancelled", "replaced", "skipped", "failed")},
        "reasons": output["reasons"],
        "circuit_open": output["circuit_open"],
        "cancelled_ids": [o["id"] for o in acted],
        "replacements": [[o["id"], o["replacement_id"]] for o in acted if o["decision"] == "replace"],
        "held_ids": [o["id"] for o in output["orders"] if o["reason"] == "backend_sender_unavailable"],
        "started": started,
        "ended": ended,
    }


def invariants_assert(
    *, originals: set[int], reports: list[dict[str, Any]], executor: dict[str, Any]
) -> dict:
    """docs/design.md's guarantees over the whole table after the race; returns the figures."""
    orders = {o.pk: o for o in TradeOrder.objects.all()}
    acknowledged = set(executor["acknowledged"])
    assert len(acknowledged) == len(executor["acknowledged"]), "the executor acknowledged an order twice"
    cancelled = {i for i in originals if orders[i].status == "CANCELED"}
    # Orders a sweep left NEW because the backend's direct-order loop would not have sent
    # their replacements (rule 10b: 150 rows ahead of it in the loop's queue, and no loop
    # runs here to take the sweeps' replacements away).
    held_reported = {i for r in reports for i in r["held_ids"]} - cancelled
    held = held_reported - acknowledged

    # Every original ends CANCELED or acknowledged by the executor, never both; or, held by
    # rule 10b, NEW and untouched.
    assert {i for i in originals if i not in cancelled and i not in acknowledged} == held
    for order_id in held:
        order = orders[order_id]
        assert (order.status, order.ib_order_id) == (
            "NEW",
            None,
        ) and "auto_recovery_cancel" not in order.params
    assert cancelled & acknowledged == set(), "an acknowledged order was cancelled"
    for order_id in acknowledged:
        order = orders[order_id]
        assert (order.status, order.ib_order_id) == ("SUBMITTED", IB_ORDER_ID_BASE + order_id)
        assert "auto_recovery_cancel" not in order.params
    # An original still NEW and unlocked after every sweep ended was left alone by all of them:
    # the executor's acknowledgement was sent after the last sweep's end.
    last_end = max(r["ended"] for r in reports)
    late = [
        i
        for i, at in zip(executor["acknowledged"], executor["acknowledged_sent_at"], strict=True)
        if at > last_end
    ]
    assert [i for i in late if i in originals and i not in held_reported] == []

    # Exactly one replacement per cancelled original, nothing else in the table.
    replacements: dict[int, list[TradeOrder]] = {}
    for order in orders.values():
        origin = (order.params.get("auto_recovery") or {}).get("origin_order_id")
        if origin is not None:
            replacements.setdefault(origin, []).append(order)
    assert set(replacements) == cancelled
    assert {origin: len(rows) for origin, rows in replacements.items() if len(rows) != 1} == {}
    replacement_ids = {rows[0].pk for rows in replacements.values()}
    assert set(orders) == originals | replacement_ids
    assert all(orders[r].status in ("NEW", "SUBMITTED") for r in replacement_ids)
    client_ids = Counter(o.client_order_id for o in orders.values())
    assert [c for c, n in client_ids.items() if n > 1] == []

    # The audit trail says the same, once per fact.
    cancels = Counter(AuditLog.objects.filter(action=ACTION_CANCEL).values_list("resource_id", flat=True))
    replaces = Counter(AuditLog.objects.filter(action=ACTION_REPLACE).values_list("resource_id", flat=True))
    assert cancels == Counter(cancelled)
    assert replaces == Counter(replacement_ids)

    # And so do the processes: each counts what it did, together what the database holds.
    for report in reports:
        assert not report["circuit_open"], report["reasons"]
        assert report["failed"] == 0, report["reasons"]
        assert report["scanned"] == report["cancelled"] + report["skipped"] + report["failed"]
        actor_cancels = AuditLog.objects.filter(action=ACTION_CANCEL, actor=report["actor"]).count()
        assert actor_cancels == report["cancelled"] == len(report["cancelled_ids"]), report["actor"]
        assert set(report["reasons"]) <= {"replaced", "changed_concurrently", "backend_sender_unavailable"}
    assert sum(r["cancelled"] for r in reports) == len(cancelled)
    assert sum(r["replaced"] for r in reports) == len(replacement_ids)
    assert Counter(i for r in reports for i in r["cancelled_ids"]) == Counter(cancelled)
    reported = {origin: new for r in reports for origin, new in r["replacements"]}
    assert reported == {origin: rows[0].pk for origin, rows in replacements.items()}
    sweeps_written = AuditLog.objects.filter(action=ACTION_SWEEP).count()
    assert sweeps_written == sum(1 for r in reports if r["cancelled"] or r["failed"])

    first_end = min(r["ended"] for r in reports)
    return {
        "split": {r["actor"]: r["cancelled"] for r in reports},
        "acknowledged": len(acknowledged),
        "acknowledged_originals": len(acknowledged & originals),
        "acknowledged_replacements": len(acknowledged & replacement_ids),
        "acknowledged_while_all_ran": sum(
            1
            for at in executor["acknowledged_sent_at"]
            if max(r["started"] for r in reports) <= at <= first_end
        ),
        "executor_lost_races": executor["lost"],
        "cancelled": len(cancelled),
        "held_by_the_backends_queue": len(held),
    }


def overlap_assert(reports: list[dict[str, Any]]) -> None:
    """The race happened: every party started before any of them finished."""
    assert max(r["started"] for r in reports) < min(r["ended"] for r in reports), [
        (r["actor"], r["started"], r["ended"]) for r in reports
    ]


def test_four_sweep_processes_and_the_executor_over_1000_orders(
    committed_db,  # noqa: ANN001
    bridge,  # noqa: ANN001
    clock: dt.datetime,
    tmp_path: Path,
) -> None:
    """Any wall clock: the sweeps are given `--now`, and the settings allow re-placing outside
    regular hours.
    """
    recovery_configured()
    originals = stale_orders_create(1000, clock=clock)  # clock: a Tuesday, mid-session
    pack = Pack(tmp_path, LEAN_BRIDGE_ROOT=str(bridge.root))
    try:
        executor = pack.start("executor", "executor", "--seed", str(SEED), "--pause", "0.02")
        sweeps = [
            pack.start(
                f"sweep-{n}",
                "sweep",
                "--actor",
                f"proof-sweep-{n}",
                "--limit",
                "1000",
                "--now",
                clock.isoformat(),
            )
            for n in range(1, 5)
        ]
        pack.wait_ready()
        started = time.monotonic()
        pack.release()
        reports = [sweep.json() for sweep in sweeps]
        elapsed = time.monotonic() - started
        pack.stop.touch()
        acknowledged = executor.json()
    finally:
        pack.close()

    overlap_assert(reports)
    figures = invariants_assert(originals=originals, reports=reports, executor=acknowledged)
    assert figures["acknowledged_while_all_ran"] > 0, "the executor never raced the sweeps"
    print(f"\n4 sweeps + executor over 1000 orders in {elapsed:.2f}s (seed {SEED}): {figures}")


def lock_seen(command: Process, *, alias: str) -> float:
    """Wait until the command holds its named lock (it is about to read the candidates)."""
    # django_mysql's Lock names it '<database>.<name>' (imported lazily: not on SQLite runs).
    from django_mysql.locks import Lock

    name = Lock.make_name(alias, LOCK_NAME)
    deadline = time.monotonic() + WAIT_SECONDS
    with connections[alias].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT IS_USED_LOCK(%s)", [name])
            if cursor.fetchone()[0] is not None:
                return time.time()
            assert command.popen.poll() is None, f"the command ended before it was seen:\n{command.stderr()}"
            time.sleep(0.002)
    raise AssertionError("the command never took its lock")


def test_the_command_and_the_admins_recovery_at_the_same_moment(
    committed_db,  # noqa: ANN001
    bridge,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """Any wall clock: the settings allow re-placing outside regular hours; the orders are an
    hour old by this process's clock, which the processes share.
    """
    recovery_configured()
    # The command reads the real clock (cron passes none): the orders are an hour old now.
    originals = stale_orders_create(300, clock=timezone.now())
    pack = Pack(tmp_path, LEAN_BRIDGE_ROOT=str(bridge.root), AUTO_RECOVER_LOCK_DIR=str(tmp_path))
    selected = ",".join(str(i) for i in sorted(originals))
    try:
        executor = pack.start("executor", "executor", "--seed", str(SEED + 1), "--pause", "0.01")
        admin = pack.start("admin", "admin", "--ids", selected)
        pack.wait_ready()
        command = pack.manage("command", "auto_recover", "--json", "--limit", "300")
        command_started = lock_seen(command, alias=trading_alias())
        pack.release()  # the admin confirms the moment cron's run begins
        while command.popen.poll() is None:
            time.sleep(0.002)
        command_ended = time.time()
        admin_report = admin.json()
        command_report = command_facts(command.json(), started=command_started, ended=command_ended)
        pack.stop.touch()
        acknowledged = executor.json()
    finally:
        pack.close()

    assert admin_report["outcome"] == "ok", admin_report["message"]
    assert command_report["actor"] == ACTOR_COMMAND
    reports = [command_report, admin_report]
    overlap_assert(reports)
    figures = invariants_assert(originals=originals, reports=reports, executor=acknowledged)
    print(f"\ncommand + admin + executor over 300 orders (seed {SEED + 1}): {figures}")
