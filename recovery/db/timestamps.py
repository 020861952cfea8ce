"""ISO-8601 timestamps as the backend and the bridge write them (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")


def trade_date_for(moment: datetime) -> date:
    """The date in New York at `moment`, as the backend computes a trading day (weekends included)."""
    return moment.astimezone(NEW_YORK).date()


def iso_parse(value: Any) -> datetime | None:
    """ISO-8601 with Z, an offset or naive (= UTC, as utcnow() writes) -> aware UTC; None when unusable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: before datetime.min once in UTC
        return None


def iso_utc(moment: datetime) -> str:
    """An aware datetime as ISO-8601 UTC with a Z, the form the backend's params use."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
