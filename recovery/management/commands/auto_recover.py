"""`manage.py auto_recover`: the cron entry point of the sweep.

Exit codes: 0 the sweep ran (skips are normal, so is an order another sweep recovered
first) or another run held the lock; 1 an order's write failed with the order still NEW;
2 the sweep could not run; 3 the circuit breaker is open (nothing changed); 4 the database
connection was lost mid-sweep (the orders recovered before it stay recovered, the rest
stay NEW); 5 blocked: a sweep-wide gate (the clocks, the IB gateway, the bridge root) kept
it from acting; 6 over budget: the time budget stopped it with orders left for the next run.

stderr, even at -v 0: a line for 1, 2 and 4 every run (something failed); for the others
one line when the state changes (cron mails every line), and one when it is ok again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from recovery.db.audit import ACTOR_COMMAND
from recovery.db.checks import trading_schema_assert
from recovery.db.routers import trading_alias
from recovery.exceptions import SchemaNotReady
from recovery.ops.metrics import metrics_write
from recovery.ops.runs import Outcome, RunReport, could_not_run_message, heartbeat_prune, sweep_run_recorded
from recovery.services import sweep_run
from recovery.sweep.reporting import sweep_lines
from recovery.sweep.results import SweepResult

EXIT_CODES = {
    Outcome.OK: 0,
    Outcome.LOCK_HELD: 0,
    Outcome.FAILED: 1,
    Outcome.COULD_NOT_RUN: 2,
    Outcome.BREAKER_OPEN: 3,
    Outcome.CONNECTION_LOST: 4,
    Outcome.BLOCKED: 5,
    Outcome.OVER_BUDGET: 6,
}
DEFAULT_MAX_SECONDS = 50.0
MSG_FAILED = "{failed} order(s) could not be written and stay NEW; see the log and the sweep's audit row"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..100000")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..86400 seconds (0 excluded)")
    return value


class Command(BaseCommand):
    help = "Cancel stale NEW orders and, when safe, re-place them. Meant for cron, every minute."
    # The schema check runs in the service so that a missing table is exit code 2, not 1.
    requires_system_checks: list[str] = []
    # Tests and the demo pass the clock in; cron never does.
    stealth_options = ("now",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="decide and print; write nothing")
        parser.add_argument("--limit", type=positive_int, default=200, help="orders per run (default 200)")
        parser.add_argument("--json", action="store_true", dest="as_json", help="one JSON object on stdout")
        parser.add_argument(
            "--max-seconds",
            type=positive_seconds,
            default=DEFAULT_MAX_SECONDS,
            help=f"time budget: past it no new order is started (default {DEFAULT_MAX_SECONDS:g}, "
            "inside cron's minute)",
        )
        parser.add_argument(
            "--metrics-file",
            type=Path,
            help="write Prometheus metrics here (node_exporter textfile collector)",
        )

    def handle(
        self,
        *,
        dry_run: bool,
        limit: int,
        as_json: bool,
        verbosity: int,
        metrics_file: Path | None = None,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        now: dt.datetime | None = None,
        **options: Any,
    ) -> None:
        now = now or timezone.now()
        if dry_run:
            self._show(self._dry_run(now=now, limit=limit), as_json=as_json, verbosity=verbosity)
            return
        report = sweep_run_recorded(
            now=now,
            actor=ACTOR_COMMAND,
            exclusive=True,
            check_schema=True,
            limit=limit,
            max_seconds=max_seconds,
        )
        if report.outcome not in (Outcome.COULD_NOT_RUN, Outcome.CONNECTION_LOST):
            heartbeat_prune(now=now)
        if metrics_file is not None:
            metrics_write(path=metrics_file, report=report, now=now)
        self._finish(report, as_json=as_json, verbosity=verbosity)

    def _dry_run(self, *, now: dt.datetime, limit: int) -> SweepResult:
        try:
            trading_schema_assert(using=trading_alias())
            return sweep_run(now=now, actor=ACTOR_COMMAND, dry_run=True, limit=limit)
        except (SchemaNotReady, DatabaseError) as exc:
            code = EXIT_CODES[Outcome.COULD_NOT_RUN]
            raise CommandError(could_not_run_message(exc), returncode=code) from None

    def _show(
        self, result: SweepResult, *, as_json: bool, verbosity: int, outcome: Outcome | None = None
    ) -> None:
        if as_json:
            extra = {"outcome": str(outcome)} if outcome is not None else {}
            self.stdout.write(json.dumps({**result.as_dict(), **extra}))
        elif verbosity >= 1:
            for line in sweep_lines(result, verbosity=verbosity):
                self.stdout.write(line)

    def _finish(self, report: RunReport, *, as_json: bool, verbosity: int) -> None:
        code = EXIT_CODES[report.outcome]
        if report.outcome is Outcome.COULD_NOT_RUN:
            raise CommandError(report.message, returncode=code)
        if report.outcome is Outcome.LOCK_HELD:
            if as_json:
                self.stdout.write(json.dumps({"lock_held": True, "message": report.message}))
            elif verbosity >= 1:
                self.stdout.write(report.message)
            return
        result = report.result
        assert result is not None  # every other outcome comes with a result
        self._show(result, as_json=as_json, verbosity=verbosity, outcome=report.outcome)
        if report.state_line:
            self.stderr.write(report.state_line)
        if report.outcome is Outcome.CONNECTION_LOST:
            raise CommandError(report.message, returncode=code)
        if report.outcome is Outcome.FAILED:
            raise CommandError(MSG_FAILED.format(failed=result.failed), returncode=code)
        if code:
            # Blocked, breaker open, over budget: the exit code every run, the words on
            # stdout for a person; stderr only had the line above when the state changed.
            if verbosity >= 1 and not as_json:
                self.stdout.write(f"{report.outcome.label}: {report.message}")
            raise SystemExit(code)
