"""Prints the offset, in seconds from now, of the next moment of a kind, for CI's clock runs.

    python .ci/clock/moment.py saturday   next Saturday, 12:00 in New York
    python .ci/clock/moment.py holiday    next NYSE holiday on a weekday, 11:00 in New York
                                          (a time the market would be open on a normal day)

The moment goes to stderr in words; stdout gets the offset alone, for
TRADEOPS_CLOCK_OFFSET_SECONDS. Both moments lie ahead of the real clock, so the cookies the
moved server sets do not expire in the real-time browser.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
SATURDAY = 5


def next_saturday_noon(now: datetime) -> datetime:
    day = now.astimezone(NEW_YORK).date() + timedelta(days=1)
    while day.weekday() != SATURDAY:
        day += timedelta(days=1)
    return datetime.combine(day, time(12, 0), tzinfo=NEW_YORK)


def next_weekday_holiday(now: datetime) -> datetime:
    import exchange_calendars

    start = now.astimezone(NEW_YORK).date() + timedelta(days=1)
    end = start + timedelta(days=400)
    calendar = exchange_calendars.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
    sessions = {s.date() for s in calendar.sessions}
    day: date = start
    while day <= end:
        if day.weekday() < SATURDAY and day not in sessions:
            return datetime.combine(day, time(11, 0), tzinfo=NEW_YORK)
        day += timedelta(days=1)
    raise SystemExit(f"no weekday holiday between {start} and {end}")


KINDS = {"saturday": next_saturday_noon, "holiday": next_weekday_holiday}


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in KINDS:
        raise SystemExit(f"usage: moment.py {{{'|'.join(KINDS)}}}")
    now = datetime.now(UTC)
    moment = KINDS[argv[0]](now)
    in_utc = moment.astimezone(UTC)
    print(f"clock moved to {moment:%A %Y-%m-%d %H:%M %Z} ({in_utc:%H:%M} UTC)", file=sys.stderr)
    print(int((moment - now).total_seconds()))


if __name__ == "__main__":
    main(sys.argv[1:])
