"""NYSE regular trading hours (rule 8), from exchange_calendars' XNYS calendar.

Holidays and early closes come from the library; nothing here lists dates by hand.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars
import pandas as pd

CALENDAR_NAME = "XNYS"
CALENDAR_START = "2024-01-01"
# The calendar ends on 31 December this many years after the sweep's year: at least two
# years of future for next open and close, and one build serves a whole year of sweeps.
CALENDAR_YEARS_AHEAD = 3
# Past this year a `now` is a bad clock or a bad argument, not a sweep to answer.
CALENDAR_LAST_YEAR = 2200
NEW_YORK = ZoneInfo("America/New_York")
PANDAS_VALUES_WARNING = "Series.values returning an ndarray"

MSG_NAIVE_NOW = "now must be timezone-aware, got the naive datetime {now!r}"
MSG_OUT_OF_RANGE = "{day} (New York) is outside the XNYS calendar, which covers {first} to {last}"


@dataclass(frozen=True)
class MarketState:
    is_open: bool
    session_open: datetime | None
    session_close: datetime | None
    next_open: datetime | None
    next_close: datetime | None


_BUILD_LOCK = threading.Lock()


def _calendar(*, now: datetime) -> exchange_calendars.ExchangeCalendar:
    """The calendar for a sweep at `now`: its range follows the sweep's clock, not the wall clock."""
    year = max(now.astimezone(NEW_YORK).year, date.fromisoformat(CALENDAR_START).year)
    end_year = min(year + CALENDAR_YEARS_AHEAD, CALENDAR_LAST_YEAR)
    # Threads (the admin, concurrent sweeps) share one build: catch_warnings is not
    # thread-safe, and building twice is wasted work.
    with _BUILD_LOCK:
        return _calendar_build(end_year)


@lru_cache(maxsize=4)
def _calendar_build(end_year: int) -> exchange_calendars.ExchangeCalendar:
    # Building takes a fraction of a second and the answer only changes with the
    # library's rules and the year the range must reach: one calendar per process and year.
    with warnings.catch_warnings():
        # exchange_calendars 4.13 reads Series.values, which pandas 3.1 deprecates; the
        # warning is theirs, says nothing about our use, and would show in every test run.
        warnings.filterwarnings("ignore", message=PANDAS_VALUES_WARNING, category=DeprecationWarning)
        return exchange_calendars.get_calendar(CALENDAR_NAME, start=CALENDAR_START, end=f"{end_year}-12-31")


def market_state_get(*, now: datetime) -> MarketState:
    """NYSE regular session facts at `now` (aware, any zone); all returned times are UTC."""
    if now.utcoffset() is None:
        raise ValueError(MSG_NAIVE_NOW.format(now=now))
    calendar = _calendar(now=now)
    now_utc = now.astimezone(UTC)
    session = _session_get(calendar, day=now.astimezone(NEW_YORK).date())
    session_open, session_close = session or (None, None)
    return MarketState(
        is_open=session is not None and session[0] <= now_utc < session[1],
        session_open=session_open,
        session_close=session_close,
        next_open=_first_after(calendar.opens, now=now_utc),
        next_close=_first_after(calendar.closes, now=now_utc),
    )


def _session_get(
    calendar: exchange_calendars.ExchangeCalendar, *, day: date
) -> tuple[datetime, datetime] | None:
    """Open and close of the session on this New York date; None on a closed day."""
    first, last = calendar.first_session.date(), calendar.last_session.date()
    # Past the last session the calendar cannot tell a holiday from a trading day:
    # refuse rather than report "closed" (the library would raise DateOutOfBounds).
    if not first <= day <= last:
        raise ValueError(MSG_OUT_OF_RANGE.format(day=day, first=first, last=last))
    label = pd.Timestamp(day)
    if not calendar.is_session(label):
        return None
    return _utc(calendar.session_open(label)), _utc(calendar.session_close(label))


def _first_after(times: pd.Series, *, now: datetime) -> datetime | None:
    # The library's next_open()/next_close() raise near both ends of the calendar
    # (before its first minute, or from its last open on); a search over the same
    # sorted opens/closes gives "strictly after now" everywhere, and None past the end.
    index = int(times.searchsorted(pd.Timestamp(now), side="right"))
    return _utc(times.iloc[index]) if index < len(times) else None


def _utc(moment: pd.Timestamp) -> datetime:
    return moment.to_pydatetime().astimezone(UTC)
