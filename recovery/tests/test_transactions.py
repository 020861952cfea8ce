"""One transaction per order for a loop of orders: commit, rollback, autocommit restored."""

from __future__ import annotations

import pytest
from django.db import connections, transaction

from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
from recovery.db.transactions import order_transactions
from recovery.services.order import order_cancel_conditional
from recovery.tests.conftest import CLOCK, stale_order


class Boom(Exception):
    pass


def test_each_order_commits_or_rolls_back_alone_and_autocommit_comes_back(committed_db) -> None:  # noqa: ANN001
    kept, undone = stale_order(), stale_order()
    connection = connections[trading_alias()]
    with order_transactions(using=trading_alias()) as transactions:
        assert transactions.explicit and not connection.get_autocommit()
        with transactions.order():
            assert order_cancel_conditional(order_id=kept.pk, params={}, now=CLOCK)
        with pytest.raises(Boom), transactions.order():
            assert order_cancel_conditional(order_id=undone.pk, params={}, now=CLOCK)
            raise Boom
    assert connection.get_autocommit()
    status = dict(TradeOrder.objects.values_list("pk", "status"))
    assert (status[kept.pk], status[undone.pk]) == ("CANCELED", "NEW")


def test_inside_an_atomic_block_each_order_is_a_savepoint(trading) -> None:  # noqa: ANN001
    order = stale_order()
    with order_transactions(using=trading_alias()) as transactions:
        assert not transactions.explicit
        with pytest.raises(Boom), transactions.order():
            order_cancel_conditional(order_id=order.pk, params={}, now=CLOCK)
            raise Boom
    assert transaction.get_connection(trading_alias()).in_atomic_block  # the test's own, untouched
    assert TradeOrder.objects.get(pk=order.pk).status == "NEW"
