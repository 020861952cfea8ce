"""`manage.py auto_recover_health`: one line and an exit code for the monitor.

0 the last auto_recover run is recent enough and ended well (or the runs have been blocked,
breaker_open or over_budget for at most RECOVERY_HEALTH_DEGRADED_MINUTES), and the backend
is sending the replacements; 1 the run is too old, ended failed, connection_lost or
could_not_run, the runs have been blocked, breaker_open or over_budget for longer (said
in words: "blocked for 7 minutes: the bridge root ..."), or a replacement is an incident
(not picked up by the backend's sender 120 s after it was written, ended SKIPPED or
REJECTED without a fill in the last 24 h, or a double); 2 it cannot tell (no run yet, no
database) and knows of no incident.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from recovery.ops.health import health_get


def seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second")
    return value


class Command(BaseCommand):
    help = (
        "Exit 0 when the last auto_recover run is recent and ended well and no replacement is an "
        "incident, 1 when not, 2 when unknown."
    )
    requires_system_checks: list[str] = []
    stealth_options = ("now",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-age",
            type=seconds,
            help="seconds since the last run (default RECOVERY_HEALTH_MAX_AGE_SECONDS, as /healthz/recovery)",
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="one JSON object on stdout")

    def handle(
        self, *, max_age: int | None, as_json: bool, now: dt.datetime | None = None, **options: Any
    ) -> None:
        limit = max_age if max_age is not None else settings.RECOVERY_HEALTH_MAX_AGE_SECONDS
        health = health_get(now=now or timezone.now(), max_age_seconds=limit)
        self.stdout.write(json.dumps(health.as_dict()) if as_json else health.message)
        if health.exit_code:
            # Not a CommandError: the line above is the whole message, exit code for the monitor.
            raise SystemExit(health.exit_code)
