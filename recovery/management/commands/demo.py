"""`manage.py demo`: build the SQLite demo database and show every rule of the sweep."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from recovery.demo import (
    DEMO_PASSWORD,
    DEMO_USER,
    TABLE_REASONS,
    demo_bridge_root,
    demo_clock,
    demo_data_load,
    demo_database_build,
    demo_sweeps_run,
    demo_user_ensure,
    reasons_shown,
)
from recovery.exceptions import UnsafeSchemaOperation
from recovery.sweep.reporting import sweep_lines


class Command(BaseCommand):
    help = "Rebuild the SQLite demo database, load one order per rule and run the sweep on it."
    requires_system_checks: list[str] = []  # the demo builds the schema the checks look for

    def handle(self, *, verbosity: int, **options: Any) -> None:
        try:
            demo_database_build()
        except UnsafeSchemaOperation as exc:
            raise CommandError(str(exc), returncode=2) from None
        clock = demo_clock(now=timezone.now())
        bridge_root = demo_bridge_root()
        count = demo_data_load(clock=clock, bridge_root=bridge_root)
        database = settings.DATABASES["default"]["NAME"]
        self.stdout.write(f"demo database {database}: {count} orders loaded; bridge files in {bridge_root}")
        self.stdout.write(f"demo clock: {clock:%Y-%m-%d %H:%M}Z (11:00 New York, a recent NYSE session)")
        runs = demo_sweeps_run(clock=clock, bridge_root=bridge_root)
        for number, run in enumerate(runs, start=1):
            self.stdout.write("")
            self.stdout.write(self.style.MIGRATE_HEADING(f"== {number}. {run.title}"))
            for line in sweep_lines(run.result, verbosity=max(verbosity, 2) if number == 6 else verbosity):
                self.stdout.write(line)
        shown = reasons_shown(runs)
        missing = sorted(str(r) for r in TABLE_REASONS - shown)
        self.stdout.write("")
        self.stdout.write(
            f"decision-table reasons shown: {len(TABLE_REASONS & shown)} of {len(TABLE_REASONS)}"
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )
        if missing:
            raise CommandError(f"the demo no longer shows: {', '.join(missing)}")
        demo_user_ensure()
        self.stdout.write("")
        self.stdout.write(
            f"Open the admin on the demo database: `make admin` (or DEBUG=1 .venv/bin/python manage.py "
            f"runserver), then http://127.0.0.1:8000/admin/ as {DEMO_USER} / {DEMO_PASSWORD}."
        )
