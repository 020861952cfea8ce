"""Rule 3: projects halted by the backend's risk guard today (read only)."""

from __future__ import annotations

from datetime import datetime

from recovery.db.models import TradeGuardState
from recovery.db.timestamps import NEW_YORK, trade_date_for

__all__ = ["HALTED", "NEW_YORK", "halted_today_get", "trade_date_for"]

HALTED = "halted"


def halted_today_get(*, now: datetime) -> frozenset[tuple[int, str]]:
    """Every (project_id, mode) whose guard row for today says halted (one small query)."""
    rows = TradeGuardState.objects.filter(trade_date=trade_date_for(now), status=HALTED)
    return frozenset(rows.values_list("project_id", "mode"))
