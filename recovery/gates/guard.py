"""Rule 3: projects halted by the backend's risk guard today (read only)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from recovery.db.models import TradeGuardState

NEW_YORK = ZoneInfo("America/New_York")
HALTED = "halted"


def trade_date_for(now: datetime) -> date:
    """Today's date in New York, as the backend computes it (weekends included)."""
    return now.astimezone(NEW_YORK).date()


def halted_today_get(*, now: datetime) -> frozenset[tuple[int, str]]:
    """Every (project_id, mode) whose guard row for today says halted (one small query)."""
    rows = TradeGuardState.objects.filter(trade_date=trade_date_for(now), status=HALTED)
    return frozenset(rows.values_list("project_id", "mode"))
