"""factory-boy factories for every trading model."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from recovery.db import models
from recovery.db.routers import trading_alias
from recovery.gates.guard import trade_date_for
from recovery.tests.gateway import gateway_port


class TradingFactory(DjangoModelFactory):
    class Meta:
        abstract = True
        database = trading_alias()


class TradeSettingsFactory(TradingFactory):
    class Meta:
        model = models.TradeSettings

    risk_defaults = factory.LazyFunction(lambda: {"max_position_pct": 0.1})
    execution_data_source = "ib"
    auto_recovery = None


class TradeRunFactory(TradingFactory):
    class Meta:
        model = models.TradeRun

    project_id = factory.Sequence(lambda n: 100 + n)
    mode = "paper"
    status = "done"  # a finished run: its orders are the sweep's (rule 3b)


class TradeOrderFactory(TradingFactory):
    class Meta:
        model = models.TradeOrder

    client_order_id = factory.Sequence(lambda n: f"ord-{n:06d}")
    symbol = "AAPL"
    side = "BUY"
    quantity = 10.0
    order_type = "MKT"
    limit_price = None
    status = "NEW"
    filled_quantity = 0.0
    params = factory.LazyFunction(dict)
    created_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(minutes=5))
    updated_at = factory.SelfAttribute("created_at")


class AuditLogFactory(TradingFactory):
    class Meta:
        model = models.AuditLog

    actor = "system"
    action = "trade_order.create"
    resource_type = "trade_order"
    resource_id = factory.Sequence(lambda n: n + 1)
    detail = factory.LazyFunction(dict)


class TradeGuardStateFactory(TradingFactory):
    class Meta:
        model = models.TradeGuardState

    project_id = factory.Sequence(lambda n: 100 + n)
    # Today as the guard reads it: New York's date, which is not UTC's in the evening.
    trade_date = factory.LazyFunction(lambda: trade_date_for(timezone.now()))
    mode = "paper"
    status = "active"


class IbSettingsFactory(TradingFactory):
    class Meta:
        model = models.IbSettings

    # A gateway that answers, in the mode whose replacements the backend sends (rule 10b).
    host = "127.0.0.1"
    port = factory.LazyFunction(gateway_port)
    api_mode = "ib"


class SweepRunFactory(DjangoModelFactory):
    """A heartbeat row (this app's own table, on the default database)."""

    class Meta:
        model = models.SweepRun

    started_at = factory.LazyFunction(timezone.now)
    ended_at = factory.SelfAttribute("started_at")
    duration_seconds = 0.2
    actor = "auto_recover"
    host = "h"
    outcome = "ok"
