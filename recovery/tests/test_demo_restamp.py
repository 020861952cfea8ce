"""`demo --restamp` (recovery/demo/restamp.py): the demo's world moved to now, days later, decides alike.

No wall clock: the scenario is stamped at the fixed CLOCK and moved to a `now` passed in.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.test import override_settings

from recovery.db.models import AuditLog, IbSettings, SweepRun, TradeGuardState, TradeOrder
from recovery.demo import LoopbackGateway, demo_data_load
from recovery.demo.restamp import demo_latest_moment, demo_restamp, moments_shift
from recovery.services import sweep_run
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, Bridge, is_mysql

# The demo runs only on SQLite (and MariaDB's ON UPDATE CURRENT_TIMESTAMP would stamp its rows now).
pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(is_mysql(), reason="the demo runs only on SQLite (demo_database_assert)"),
]
WEEK = dt.timedelta(days=7)


def _decisions(*, now: dt.datetime, bridge: Bridge) -> list[tuple[str, str, str]]:
    with override_settings(LEAN_BRIDGE_ROOT=bridge.root), LoopbackGateway() as gateway:
        IbSettings.objects.update(port=gateway.port)
        result = sweep_run(now=now, actor="demo", dry_run=True)
    return sorted((o.client_order_id, str(o.decision), str(o.reason)) for o in result.orders)


def test_a_week_later_the_demo_moved_to_now_decides_as_it_did(bridge: Bridge) -> None:
    demo_data_load(clock=CLOCK, bridge_root=bridge.root)
    then = _decisions(now=CLOCK, bridge=bridge)
    latest = demo_latest_moment(bridge_root=bridge.root)
    assert latest == CLOCK  # the bridge snapshots' stamp: the scenario's latest moment
    created = dict(TradeOrder.objects.values_list("client_order_id", "created_at"))
    halted = TradeGuardState.objects.values_list("trade_date", flat=True).first()

    now = CLOCK + WEEK  # Tuesday 2026-12-01, 11:00 New York: a session, as the scenario's day was
    assert demo_restamp(now=now, bridge_root=bridge.root) == WEEK

    # Not a week stale: every order is as old as it was, every file as fresh, each decision the same.
    moved = dict(TradeOrder.objects.values_list("client_order_id", "created_at"))
    assert moved == {key: value + WEEK for key, value in created.items()}
    assert TradeGuardState.objects.values_list("trade_date", flat=True).first() == halted + WEEK
    assert json.loads((bridge.root / "quotes.json").read_text())["updated_at"].startswith(
        "2026-12-01T16:00:00"
    )
    assert _decisions(now=now, bridge=bridge) == then
    assert demo_restamp(now=now, bridge_root=bridge.root) == dt.timedelta(0)  # current: nothing moves


def test_heartbeats_audit_rows_and_params_move_together(bridge: Bridge) -> None:
    order = factories.TradeOrderFactory(
        created_at=CLOCK - dt.timedelta(minutes=2),
        updated_at=CLOCK - dt.timedelta(minutes=1),
        params={
            "submit_command": {
                "expires_at": "2026-11-24T16:02:00Z",
                "requested_at": "2026-11-24T11:00:00-05:00",
            }
        },
    )
    audit = factories.AuditLogFactory(
        created_at=CLOCK - dt.timedelta(seconds=30), detail={"at": "2026-11-24T15:59:30"}
    )
    run = factories.SweepRunFactory(started_at=CLOCK - dt.timedelta(seconds=31), ended_at=CLOCK)
    offset = demo_restamp(now=CLOCK + dt.timedelta(days=3), bridge_root=bridge.root)
    assert offset == dt.timedelta(days=3)  # the heartbeat's end was the latest moment
    order.refresh_from_db()
    audit.refresh_from_db()
    run.refresh_from_db()
    assert (order.created_at, order.updated_at) == (
        CLOCK + offset - dt.timedelta(minutes=2),
        CLOCK + offset - dt.timedelta(minutes=1),
    )
    assert order.params["submit_command"] == {
        "expires_at": "2026-11-27T16:02:00Z",
        "requested_at": "2026-11-27T11:00:00-05:00",
    }
    assert (audit.created_at, audit.detail) == (
        CLOCK + offset - dt.timedelta(seconds=30),
        {"at": "2026-11-27T15:59:30"},
    )
    assert run.started_at == CLOCK + offset - dt.timedelta(seconds=31) and AuditLog.objects.count() == 1
    assert SweepRun.objects.get().ended_at == CLOCK + offset


def test_an_empty_demo_or_one_ahead_of_now_is_left_alone(bridge: Bridge) -> None:
    assert demo_restamp(now=CLOCK, bridge_root=bridge.root) == dt.timedelta(0)
    order = factories.TradeOrderFactory(created_at=CLOCK, updated_at=CLOCK + dt.timedelta(seconds=5))
    assert demo_restamp(now=CLOCK, bridge_root=bridge.root) == dt.timedelta(0)  # never backward
    order.refresh_from_db()
    assert order.updated_at == CLOCK + dt.timedelta(seconds=5)


def test_bridge_files_keep_what_does_not_parse_byte_for_byte(bridge: Bridge) -> None:
    factories.TradeOrderFactory(created_at=CLOCK, updated_at=CLOCK)
    events = bridge.events(
        [
            {"tag": "t", "status": "Submitted", "time": "2026-11-24T15:59:00Z"},
            {"tag": "t", "time": "0001-01-01T00:00:00"},
        ],
        tail='{"tag": "t", "status": "Fill',
    )
    bridge.raw("open_orders.json", "{not json")
    demo_restamp(now=CLOCK + dt.timedelta(hours=1), bridge_root=bridge.root)
    lines = events.read_text().split("\n")
    assert json.loads(lines[0])["time"] == "2026-11-24T16:59:00Z"
    assert json.loads(lines[1])["time"] == "0001-01-01T00:00:00"  # C#'s "no time" is not a moment
    assert lines[2] == '{"tag": "t", "status": "Fill'  # a line still being written
    assert (bridge.root / "open_orders.json").read_text() == "{not json"


@pytest.mark.parametrize(
    ("value", "moved"),
    [
        ("2026-11-24T16:00:00Z", "2026-11-24T17:00:00Z"),
        ("2026-11-24T11:00:00.250000-05:00", "2026-11-24T12:00:00.250000-05:00"),
        ("2026-11-24T16:00:00", "2026-11-24T17:00:00"),
        ("2026-11-24", "2026-11-24"),  # a date, not a moment
        ("16:00", "16:00"),
        ("demo-spy-r1", "demo-spy-r1"),
        (45, 45),
    ],
)
def test_moments_shift(value: object, moved: object) -> None:
    assert moments_shift({"a": [value]}, offset=dt.timedelta(hours=1)) == {"a": [moved]}
