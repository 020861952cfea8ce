"""Django loads an app's models from `recovery.models`; they live in db/models.py."""

from recovery.db.models import (  # noqa: F401
    AuditLog,
    IbSettings,
    OrderDecision,
    SweepRun,
    TradeGuardState,
    TradeOrder,
    TradeRun,
    TradeSettings,
)
