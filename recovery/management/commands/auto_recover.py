"""`manage.py auto_recover`: the cron entry point of the sweep.

Exit codes: 0 the sweep ran (skips are normal) or another run held the lock;
1 an order failed; 2 the sweep could not run; 3 the circuit breaker opened.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from recovery.audit import ACTOR_COMMAND
from recovery.checks import trading_schema_assert
from recovery.exceptions import SchemaNotReady, SweepLockHeld
from recovery.reporting import sweep_lines
from recovery.routers import trading_alias
from recovery.services import sweep_run, sweep_run_exclusive

EXIT_FAILED, EXIT_COULD_NOT_RUN, EXIT_CIRCUIT_OPEN = 1, 2, 3
MSG_LOCK_HELD = "another auto_recover run holds the lock ({name}); nothing done"
MSG_FAILED = "{failed} order(s) could not be written and stay NEW; see the log and the sweep's audit row"
MSG_CIRCUIT = "circuit breaker open: {count} orders would have been re-placed; nothing was changed"
MSG_COULD_NOT_RUN = "could not run: {reason}"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..100000")
    return value


class Command(BaseCommand):
    help = "Cancel stale NEW orders and, when safe, re-place them. Meant for cron, every minute."
    # The schema check runs in handle() so that a missing table is exit code 2, not 1.
    requires_system_checks: list[str] = []
    # Tests and the demo pass the clock in; cron never does.
    stealth_options = ("now",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="decide and print; write nothing")
        parser.add_argument("--limit", type=positive_int, default=200, help="orders per run (default 200)")
        parser.add_argument("--json", action="store_true", dest="as_json", help="one JSON object on stdout")

    def handle(
        self,
        *,
        dry_run: bool,
        limit: int,
        as_json: bool,
        verbosity: int,
        now: dt.datetime | None = None,
        **options: Any,
    ) -> None:
        now = now or timezone.now()
        try:
            trading_schema_assert(using=trading_alias())
            run = sweep_run if dry_run else sweep_run_exclusive
            result = run(now=now, actor=ACTOR_COMMAND, dry_run=dry_run, limit=limit)
        except SweepLockHeld as exc:
            message = MSG_LOCK_HELD.format(name=exc)
            if as_json:
                self.stdout.write(json.dumps({"lock_held": True, "message": message}))
            elif verbosity >= 1:
                self.stdout.write(message)
            return
        except SchemaNotReady as exc:
            raise CommandError(MSG_COULD_NOT_RUN.format(reason=exc), returncode=EXIT_COULD_NOT_RUN) from None
        except DatabaseError as exc:
            reason = f"database error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            raise CommandError(
                MSG_COULD_NOT_RUN.format(reason=reason), returncode=EXIT_COULD_NOT_RUN
            ) from None
        if as_json:
            self.stdout.write(json.dumps(result.as_dict()))
        elif verbosity >= 1:
            for line in sweep_lines(result, verbosity=verbosity):
                self.stdout.write(line)
        if result.circuit_open:
            raise CommandError(MSG_CIRCUIT.format(count=result.would_replace), returncode=EXIT_CIRCUIT_OPEN)
        if result.failed:
            raise CommandError(MSG_FAILED.format(failed=result.failed), returncode=EXIT_FAILED)
