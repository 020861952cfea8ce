"""The statements every guarantee rests on, checked on their own against the real engine."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
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
        _replacement_create(original, attempt=1, now=CLOCK, sweep_id="s")
    assert TradeOrder.objects.filter(client_order_id__startswith="uniq").count() == 2


def test_a_replacement_copies_the_order_and_starts_new() -> None:
    original = stale_order(
        order_type="LMT", limit_price=12.5, quantity=3, side="SELL", run_id=9, symbol="MSFT"
    )
    made = _replacement_create(original, attempt=1, now=CLOCK, sweep_id="s")
    row = TradeOrder.objects.get(pk=made.id)
    assert (row.client_order_id, row.status, row.filled_quantity) == (made.client_order_id, "NEW", 0)
    assert (row.symbol, row.side, row.quantity, row.order_type, row.limit_price, row.run_id) == (
        "MSFT", "SELL", 3, "LMT", 12.5, 9,
    )  # fmt: skip
    assert row.created_at == row.updated_at == CLOCK
    assert row.params["auto_recovery"] == made.chain and made.chain["origin_order_id"] == original.pk
