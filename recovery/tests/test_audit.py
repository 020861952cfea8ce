"""The sweep's own audit row stays bounded, whatever the sweep's size; its counts stay exact."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.db import connections

from recovery.db.audit import ACTION_SWEEP, SWEEP_DETAIL_MAX_BYTES, SWEEP_ORDERS_MAX, sweep_detail_bounded
from recovery.db.models import AuditLog, OrderDecision, TradeOrder
from recovery.db.routers import trading_alias
from recovery.services import sweep_run
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, is_mysql


def order(i: int, decision: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"id": i, "client_order_id": f"c{i}", "decision": decision, "reason": reason, **extra}


def test_failures_then_cancels_then_skips_are_kept_and_the_rest_counted() -> None:
    orders = [order(i, "skip", "guard_halted") for i in range(1000)]
    orders[900] = order(900, "skip", "write_failed")
    orders[500] = order(500, "replace", "replaced")
    orders[10] = order(10, "cancel", "outside_rth")
    detail = {"sweep_id": "s", "scanned": 1000, "skipped": 997, "orders": orders}

    bounded = sweep_detail_bounded(detail)

    assert [o["id"] for o in bounded["orders"][:4]] == [900, 10, 500, 0]
    assert len(bounded["orders"]) == SWEEP_ORDERS_MAX
    assert (bounded["orders_total"], bounded["orders_omitted"]) == (1000, 1000 - SWEEP_ORDERS_MAX)
    assert (bounded["scanned"], bounded["skipped"]) == (1000, 997)
    assert sweep_detail_bounded(bounded) == bounded  # cut once, cut for good
    assert len(detail["orders"]) == 1000  # the caller's report is left whole


def test_a_small_sweep_keeps_every_order() -> None:
    detail = {"orders": [order(1, "cancel", "outside_rth")], "left_alone": []}
    bounded = sweep_detail_bounded(detail)
    assert bounded["orders"] == detail["orders"]
    assert (bounded["orders_total"], bounded["orders_omitted"]) == (1, 0)


def test_long_texts_are_cut_so_the_bound_holds_by_construction() -> None:
    long = "x" * 100_000
    orders = [order(i, "skip", "broker_evidence_unreadable", detail=long, label=long) for i in range(300)]
    orders[0]["evidence"] = {"files": [long]}
    detail = {"orders": orders, "gates": {"problem": long * 5}, "left_alone": [{"id": i} for i in range(900)]}

    bounded = sweep_detail_bounded(detail)

    assert len(json.dumps(bounded).encode()) <= SWEEP_DETAIL_MAX_BYTES
    assert bounded["orders_total"] == 300
    assert bounded["orders_omitted"] == 300 - len(bounded["orders"])
    assert bounded["orders"][0]["evidence_cut"] is True
    assert len(bounded["left_alone"]) == 200 and bounded["left_alone_total"] == 900


def test_a_sweep_of_thousands_of_orders_writes_a_bounded_row_with_exact_counts(trading) -> None:  # noqa: ANN001
    count = 2500
    factories.TradeSettingsFactory(auto_recovery={"max_auto_retries": 0})  # cancel only
    created = CLOCK - dt.timedelta(minutes=5)
    TradeOrder.objects.bulk_create(
        TradeOrder(
            client_order_id=f"bulk-{i:05d}",
            symbol="AAPL",
            side="BUY",
            quantity=1.0,
            order_type="MKT",
            status="NEW",
            filled_quantity=0.0,
            params={"note": "x" * 200},
            created_at=created,
            updated_at=created,
        )
        for i in range(count)
    )

    result = sweep_run(now=CLOCK, actor="auto_recover", limit=count)

    assert result.cancelled == count
    row = AuditLog.objects.get(action=ACTION_SWEEP)
    size = len(json.dumps(row.detail).encode())
    assert size <= SWEEP_DETAIL_MAX_BYTES
    assert len(json.dumps(result.as_dict()).encode()) > 3 * SWEEP_DETAIL_MAX_BYTES  # what it used to write
    assert (row.detail["scanned"], row.detail["cancelled"], row.detail["failed"]) == (count, count, 0)
    assert row.detail["reasons"] == {"retries_exhausted": count}
    assert (row.detail["orders_total"], row.detail["orders_omitted"]) == (count, count - SWEEP_ORDERS_MAX)
    # The rest are in the history, each pointing at this row.
    assert OrderDecision.objects.filter(first_audit_id=row.pk, reason="retries_exhausted").count() == count
    if is_mysql():
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute("SELECT @@max_allowed_packet")
            (packet,) = cursor.fetchone()
        assert size * 4 <= packet  # the server's least allowed value is 1 MiB


@pytest.mark.parametrize("bad", [None, "orders", 5])
def test_a_detail_without_a_list_of_orders_is_bounded_too(bad: Any) -> None:
    bounded = sweep_detail_bounded({"orders": bad})
    assert (bounded["orders"], bounded["orders_total"], bounded["orders_omitted"]) == ([], 0, 0)
