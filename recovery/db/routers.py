"""Send the trading models to their database and never migrate them."""

from __future__ import annotations

from django.conf import settings
from django.db import connections
from django.db.models import Model

TRADING_ALIAS = "trading"
TRADING_TABLES = frozenset(
    {
        "trade_settings",
        "trade_orders",
        "audit_logs",
        "trade_runs",
        "trade_guard_state",
        "ib_settings",
    }
)
TRADING_MODEL_NAMES = frozenset(
    {"tradesettings", "tradeorder", "auditlog", "traderun", "tradeguardstate", "ibsettings"}
)


def trading_alias() -> str:
    """The alias holding the trading tables: 'trading' when configured, else 'default'."""
    return TRADING_ALIAS if TRADING_ALIAS in settings.DATABASES else "default"


def database_label(alias: str) -> str:
    """How messages name a database: by its role and its real name, never by the alias."""
    name = connections[alias].settings_dict["NAME"]
    if alias != "default":
        return f"the trading database ({name})"
    if trading_alias() == "default":
        return f"the database ({name})"  # Django's tables and the trading tables, one database
    return f"Django's database ({name})"


def is_trading_model(model: type[Model]) -> bool:
    return model._meta.app_label == "recovery" and model._meta.model_name in TRADING_MODEL_NAMES


class TradingRouter:
    def db_for_read(self, model: type[Model], **hints: object) -> str | None:
        return trading_alias() if is_trading_model(model) else None

    def db_for_write(self, model: type[Model], **hints: object) -> str | None:
        return trading_alias() if is_trading_model(model) else None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: object
    ) -> bool | None:
        # The backend owns the trading tables: even a `managed = True` slip emits no DDL.
        if app_label == "recovery" and model_name in TRADING_MODEL_NAMES:
            return False
        # A separate trading database receives nothing of Django's own tables.
        if db == TRADING_ALIAS:
            return False
        return None
