"""`manage.py demo`: build the SQLite demo database and show every rule of the sweep."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from recovery.demo import (
    DEMO_PASSWORD,
    DEMO_USER,
    TABLE_REASONS,
    demo_bridge_root,
    demo_clock,
    demo_data_load,
    demo_database_assert,
    demo_database_build,
    demo_gateway_stand_in,
    demo_present,
    demo_sweeps_run,
    demo_user_ensure,
    reasons_shown,
)
from recovery.demo.restamp import demo_restamp
from recovery.exceptions import UnsafeSchemaOperation
from recovery.sweep.labels import age_text
from recovery.sweep.reporting import sweep_lines

MSG_NO_DEMO = "no demo in {database} yet: run `make demo` first"
MSG_RESTAMPED = (
    "demo moved forward by {offset}: its orders, runs, audit rows, heartbeats and the bridge files "
    "in {bridge} now read as of {now:%Y-%m-%d %H:%M}Z (nothing was swept)"
)
MSG_CURRENT = "demo already current: nothing moved"
MSG_GATEWAY = "stand-in IB gateway on 127.0.0.1:{port} (ib_settings points there) while the admin serves"


class Command(BaseCommand):
    help = "Rebuild the SQLite demo database, load one order per rule and run the sweep on it."
    requires_system_checks: list[str] = []  # the demo builds the schema the checks look for

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--restamp",
            action="store_true",
            help="Build nothing and run no sweep: move the demo's times (database and bridge files) "
            "forward so its latest moment is now.",
        )
        parser.add_argument(
            "--serve",
            metavar="ADDRPORT",
            help="What `make admin` runs: --restamp, then the admin on ADDRPORT (runserver, no "
            "reloader) with the demo's stand-in IB gateway on loopback while it serves.",
        )

    def handle(self, *, verbosity: int, restamp: bool, serve: str | None, **options: Any) -> None:
        try:
            if restamp or serve:
                self._restamp()
                if serve:
                    self._serve(serve)
                return
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
            f"Open the admin on the demo database: `make admin`, then http://127.0.0.1:8000/admin/ as "
            f"{DEMO_USER} / {DEMO_PASSWORD}. It reads the demo's bridge files ({bridge_root}), first "
            "moves the demo's times to now and runs the demo's stand-in IB gateway while it serves "
            "(`manage.py demo --serve`)."
        )

    def _restamp(self) -> None:
        demo_database_assert()
        bridge_root = demo_bridge_root()
        if not demo_present():
            database = settings.DATABASES["default"]["NAME"]
            raise CommandError(MSG_NO_DEMO.format(database=database), returncode=2)
        now = timezone.now()
        offset = demo_restamp(now=now, bridge_root=bridge_root)
        self.stdout.write(
            MSG_RESTAMPED.format(offset=age_text(offset.total_seconds()), now=now, bridge=bridge_root)
            if offset
            else MSG_CURRENT
        )

    def _serve(self, addrport: str) -> None:
        # The sweeps of `make demo` ran against the same stand-in: without one, every stale
        # order on the admin's pages would be left alone as "IB gateway unreachable".
        with demo_gateway_stand_in() as port:
            self.stdout.write(MSG_GATEWAY.format(port=port), self.style.SUCCESS)
            call_command("runserver", addrport, use_reloader=False)
