"""The database server's clock beside this host's (design: rule 1c, "Acting on a true picture").

Every age the sweep computes is this host's now minus a `created_at` the database (or the
backend's host) wrote. When the two clocks disagree by more than a few seconds, ages are
wrong by as much, and an order written one second ago can look a minute old. So before
deciding, the sweep reads the server's `UTC_TIMESTAMP(6)` between two readings of its own
clock and compares.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from django.db import connections


def database_clock_skew(*, using: str) -> float | None:
    """The server's UTC clock minus this host's, in seconds; None where there is no server.

    SQLite is a file on this host, read with this host's clock: nothing to compare. The
    round trip bounds the error: the server read its clock somewhere between `before`
    and `after`, so the middle is off by at most half the round trip.
    """
    connection = connections[using]
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        before = time.time()
        cursor.execute("SELECT UTC_TIMESTAMP(6)")
        after = time.time()
        server = cursor.fetchone()[0]
    server_at = server.replace(tzinfo=UTC).timestamp() if isinstance(server, datetime) else float("nan")
    return round(server_at - (before + after) / 2, 3)


def database_now_offset(*, using: str) -> int | None:
    """How far ahead of UTC a new session's NOW() runs, in seconds (what the DDL's
    `DEFAULT CURRENT_TIMESTAMP` writes); None when the server cannot say (a named time zone
    without the server's time zone tables)."""
    with connections[using].cursor() as cursor:
        # The global time_zone, as the backend's sessions get it (not this session's own).
        cursor.execute(
            "SELECT TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), "
            "CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', @@GLOBAL.time_zone))"
        )
        row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])
