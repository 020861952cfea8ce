"""The statements every guarantee rests on, checked on their own against the real engine."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from recovery import selectors
from recovery.db.audit import ACTION_SWEEP
from recovery.db.models import AuditLog, OrderDecision, TradeOrder, TradeSettings
from recovery.db.routers import trading_alias
from recovery.db.timestamps import iso_utc
from recovery.services import sweep_run
from recovery.services.order import _replacement_create, order_cancel_conditional
from recovery.tests import factories
from recovery.tests.conftest import CLOCK, stale_order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "change",
    [
        {"status": "SUBMITTED"},
        {"ib_order_id": 1},
        {"ib_perm_id": 2},
        {"filled_quantity": 0.5},
        {"status": "CANCELED"},
    ],
    ids=["submitted", "ib_order_id", "ib_perm_id", "partly-filled", "already-cancelled"],
)
def test_the_conditional_cancel_refuses_an_order_the_broker_saw_or_filled(change: dict) -> None:
    order = stale_order()
    TradeOrder.objects.filter(pk=order.pk).update(**change)
    before = TradeOrder.objects.get(pk=order.pk)
    assert order_cancel_conditional(order_id=order.pk, params={"x": 1}, now=CLOCK) is False
    after = TradeOrder.objects.get(pk=order.pk)
    assert (after.status, after.params) == (before.status, before.params)


def test_the_conditional_cancel_flips_a_new_unfilled_order_once() -> None:
    order = stale_order(params={"keep": True})
    assert order_cancel_conditional(order_id=order.pk, params={"auto_recovery_cancel": True}, now=CLOCK)
    order.refresh_from_db()
    assert (order.status, order.params, order.updated_at) == (
        "CANCELED",
        {"auto_recovery_cancel": True},
        CLOCK,
    )
    assert order_cancel_conditional(order_id=order.pk, params={}, now=CLOCK) is False


def test_a_replacement_whose_client_id_exists_is_refused_by_the_unique_key() -> None:
    original = stale_order(client_order_id="uniq")
    factories.TradeOrderFactory(client_order_id="uniq-r1")
    with pytest.raises(IntegrityError), transaction.atomic(using=trading_alias()):
        _replacement_create(original, snapshot_of(original), attempt=1, now=CLOCK, sweep_id="s")
    assert TradeOrder.objects.filter(client_order_id__startswith="uniq").count() == 2


def snapshot_of(order: TradeOrder):  # noqa: ANN201
    runs = selectors.run_facts_get([order.run_id])
    return selectors.order_snapshot(
        order,
        runs={r: (f.project_id, f.mode) for r, f in runs.items()},
        run_placements={r: f.placement for r, f in runs.items()},
    )


def test_a_replacement_copies_the_order_and_starts_new() -> None:
    run = factories.TradeRunFactory(
        project_id=4,
        mode="live",
        status="done",
        params={"allow_outside_rth": True, "adaptive_priority": "Urgent"},
    )
    original = stale_order(
        order_type="LMT",
        limit_price=12.5,
        quantity=3,
        side="SELL",
        run_id=run.pk,
        symbol="MSFT",
        params={"broker_order_tag": "orig", "event_tag": "orig", "positions_baseline": {"MSFT": 0}},
    )
    made = _replacement_create(original, snapshot_of(original), attempt=1, now=CLOCK, sweep_id="s")
    row = TradeOrder.objects.get(pk=made.id)
    assert (row.client_order_id, row.status, row.filled_quantity) == (made.client_order_id, "NEW", 0)
    # Handed to the backend's direct-order loop: no run, its retry pending and due now, the
    # run's project, mode and way of sending; none of the original's tags or baseline.
    assert (row.symbol, row.side, row.quantity, row.order_type, row.limit_price, row.run_id) == (
        "MSFT", "SELL", 3, "LMT", 12.5, None,
    )  # fmt: skip
    assert row.params["direct_retry"] == {"pending": True, "reason": "auto_recovery", "count": 0}
    assert (row.params["project_id"], row.params["mode"]) == (4, "live")
    assert (row.params["allow_outside_rth"], row.params["adaptive_priority"]) == (True, "Urgent")
    assert not {"broker_order_tag", "event_tag", "positions_baseline"} & set(row.params)
    assert row.created_at == row.updated_at == CLOCK
    assert row.params["auto_recovery"] == made.chain and made.chain["origin_order_id"] == original.pk
    assert made.chain["origin_run_id"] == run.pk


def test_every_write_is_stamped_at_its_own_moment_never_the_sweeps_start(trading, settings) -> None:  # noqa: ANN001
    """A replacement written 18 s into a sweep is 0 s old, not 18: the next sweep, 0.14 s after
    the last write with a 10 s timeout, leaves it alone (stamped at the sweep's start, it
    would look 18 s stale and be cancelled: two live orders had the executor just sent it).

    The sweep's clock is injected: it decides at CLOCK, reaches its first write 18 s later
    (a long sweep) and moves a second at each reading after that (whole seconds: the
    backend's DATETIME columns keep no fraction).
    """
    TradeSettings.objects.update(auto_recovery={"new_timeout_seconds": 10})
    # A second at every reading would age the first pass's read past the 5 s bound and add
    # readings for reads again (test_fresh_picture covers those): here only the stamps count.
    settings.AUTO_RECOVER_FRESH_SECONDS = 3600
    originals = [stale_order(client_order_id=f"stamp-{i}", age=300) for i in range(3)]
    readings: list[dt.datetime] = []

    def clock() -> dt.datetime:
        readings.append(CLOCK + dt.timedelta(seconds=18 + len(readings)))
        return readings[-1]

    first = sweep_run(now=CLOCK, actor="test", clock=clock)
    assert (first.cancelled, first.replaced) == (3, 3)
    rows = {o.client_order_id: o for o in TradeOrder.objects.all()}
    for original in originals:
        cancelled, replacement = rows[original.client_order_id], rows[f"{original.client_order_id}-r1"]
        written = cancelled.updated_at
        assert written in readings and written == replacement.created_at == replacement.updated_at
        assert replacement.params["auto_recovery"]["triggered_at"] == iso_utc(written)
        stamps = AuditLog.objects.filter(resource_id__in=[cancelled.pk, replacement.pk])
        assert set(stamps.values_list("created_at", flat=True)) == {written}
    assert len({rows[f"{o.client_order_id}-r1"].created_at for o in originals}) == 3  # one moment each
    assert AuditLog.objects.get(action=ACTION_SWEEP).created_at == readings[-2]
    # The orders' decision history is written last, at its own moment too.
    assert set(OrderDecision.objects.values_list("last_at", flat=True)) == {readings[-1]}

    second = sweep_run(now=readings[-1] + dt.timedelta(seconds=0.14), actor="test")
    assert (second.scanned, second.cancelled) == (0, 0)
    assert TradeOrder.objects.filter(client_order_id__endswith="-r1", status="NEW").count() == 3
