"""NYSE regular hours from the XNYS calendar: holidays, early closes, DST, the edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import time_machine

from recovery.gates.market_hours import _first_after, market_state_get

NY = ZoneInfo("America/New_York")


def ny(year: int, month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=NY)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_thanksgiving_is_closed_all_day() -> None:
    for hour in (9, 10, 12, 15):
        state = market_state_get(now=ny(2026, 11, 26, hour, 30))
        assert not state.is_open
        assert state.session_open is None
        assert state.session_close is None
    state = market_state_get(now=ny(2026, 11, 26, 12))
    assert state.next_open == ny(2026, 11, 27, 9, 30)
    assert state.next_close == ny(2026, 11, 27, 13, 0)


def test_day_after_thanksgiving_closes_early() -> None:
    assert market_state_get(now=ny(2026, 11, 27, 12, 59)).is_open
    assert market_state_get(now=ny(2026, 11, 27, 12, 59, 59)).is_open
    closed = market_state_get(now=ny(2026, 11, 27, 13, 0))
    assert not closed.is_open
    assert closed.session_close == ny(2026, 11, 27, 13, 0)
    assert closed.next_open == ny(2026, 11, 30, 9, 30)
    assert not market_state_get(now=ny(2026, 11, 27, 13, 30)).is_open


def test_normal_weekday_open_includes_the_open_excludes_the_close() -> None:
    assert not market_state_get(now=ny(2026, 11, 24, 9, 29)).is_open
    assert not market_state_get(now=ny(2026, 11, 24, 9, 29, 59)).is_open
    assert market_state_get(now=ny(2026, 11, 24, 9, 30)).is_open
    assert market_state_get(now=ny(2026, 11, 24, 15, 59)).is_open
    assert not market_state_get(now=ny(2026, 11, 24, 16, 0)).is_open


def test_normal_weekday_session_and_next_times() -> None:
    state = market_state_get(now=ny(2026, 11, 24, 9, 30))
    assert state.session_open == ny(2026, 11, 24, 9, 30)
    assert state.session_close == ny(2026, 11, 24, 16, 0)
    # Strictly after now: at the open itself the next open is tomorrow's.
    assert state.next_open == ny(2026, 11, 25, 9, 30)
    assert state.next_close == ny(2026, 11, 24, 16, 0)
    before = market_state_get(now=ny(2026, 11, 24, 9, 29))
    assert before.next_open == ny(2026, 11, 24, 9, 30)
    after = market_state_get(now=ny(2026, 11, 24, 16, 0))
    assert after.session_open == ny(2026, 11, 24, 9, 30)
    assert after.next_close == ny(2026, 11, 25, 16, 0)


def test_returned_times_are_utc() -> None:
    state = market_state_get(now=ny(2026, 11, 24, 10))
    for moment in (state.session_open, state.session_close, state.next_open, state.next_close):
        assert moment is not None
        assert moment.utcoffset() == timedelta(0)


def test_weekend_is_closed_until_monday_open() -> None:
    state = market_state_get(now=ny(2026, 11, 28, 11))  # a Saturday
    assert not state.is_open
    assert state.session_open is None
    assert state.next_open == ny(2026, 11, 30, 9, 30)
    assert state.next_close == ny(2026, 11, 30, 16, 0)


def test_new_york_date_decides_the_session_not_the_utc_date() -> None:
    # 02:00 UTC on Tuesday is still Monday evening in New York.
    state = market_state_get(now=utc(2026, 11, 24, 2))
    assert state.session_open == ny(2026, 11, 23, 9, 30)
    assert not state.is_open


def test_march_dst_switch_moves_the_utc_open() -> None:
    before = market_state_get(now=ny(2026, 3, 6, 12))
    after = market_state_get(now=ny(2026, 3, 9, 12))
    assert before.session_open == utc(2026, 3, 6, 14, 30)
    assert after.session_open == utc(2026, 3, 9, 13, 30)
    assert before.next_open == utc(2026, 3, 9, 13, 30)
    assert market_state_get(now=utc(2026, 3, 9, 13, 30)).is_open
    assert not market_state_get(now=utc(2026, 3, 6, 14, 29)).is_open


def test_november_dst_switch_moves_the_utc_open() -> None:
    before = market_state_get(now=ny(2026, 10, 30, 12))
    after = market_state_get(now=ny(2026, 11, 2, 12))
    assert before.session_open == utc(2026, 10, 30, 13, 30)
    assert after.session_open == utc(2026, 11, 2, 14, 30)
    assert before.next_open == utc(2026, 11, 2, 14, 30)
    assert not market_state_get(now=utc(2026, 11, 2, 13, 30)).is_open


def test_any_time_zone_is_accepted() -> None:
    tokyo = datetime(2026, 11, 25, 0, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 10:00 in New York
    assert market_state_get(now=tokyo).is_open


def test_naive_now_raises() -> None:
    with pytest.raises(ValueError, match="naive"):
        market_state_get(now=datetime(2026, 11, 24, 15, 0))


@pytest.mark.parametrize("now", [utc(2300, 6, 1, 15), utc(2020, 6, 1, 15)])
def test_date_outside_the_calendar_raises_a_clear_value_error(now: datetime) -> None:
    with pytest.raises(ValueError, match="outside the XNYS calendar"):
        market_state_get(now=now)


@pytest.mark.parametrize("wall_clock", [utc(2024, 1, 2, 15), utc(2026, 12, 7, 15), utc(2045, 7, 1, 3)])
def test_the_range_follows_the_sweeps_clock_not_the_wall_clock(wall_clock: datetime) -> None:
    """Thanksgiving 2035 and the early close after it, whatever the wall clock says."""
    with time_machine.travel(wall_clock, tick=False):
        assert not market_state_get(now=ny(2035, 11, 22, 12)).is_open
        early = market_state_get(now=ny(2035, 11, 23, 12, 59))
        assert early.is_open and early.session_close == ny(2035, 11, 23, 13, 0)
        assert market_state_get(now=ny(2035, 11, 23, 13, 0)).next_open == ny(2035, 11, 26, 9, 30)


def test_no_next_time_past_the_last_one() -> None:
    times = pd.Series(pd.to_datetime(["2026-11-24 14:30", "2026-11-25 14:30"], utc=True))
    assert _first_after(times, now=utc(2026, 11, 24, 14, 30)) == utc(2026, 11, 25, 14, 30)
    assert _first_after(times, now=utc(2026, 11, 25, 14, 30)) is None
