"""Entry point: .venv/bin/python -m bench.run [--orders N] [--audit N] [--stale N] [--json PATH].

Creates test_tradeops_bench (or the test_* database of DATABASE_URL), fills it, measures
(a) the idle sweep, (b) recovering stale orders, (c) admin changelists, each beside its
baseline in the same run, (d) the recovery rate on a 3-node Galera cluster beside a single
server (both servers of its own, started and stopped here), prints one table, writes it
as JSON, and drops the database. ib_settings points at a loopback listener of this process
that stands in for the IB gateway (api_mode 'ib': the sweep re-places only then, rule 10b).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from recovery.sweep.placement import QUEUE_AHEAD_MAX

DEFAULT_DATABASE_URL = "mysql://root@127.0.0.1:3306/test_tradeops_bench"
RESULTS = Path(__file__).resolve().parent / "results"
# Tuesday 2026-11-24, 11:00 New York: a regular NYSE session (the suite's clock too).
CLOCK = dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)
# Rule 10b: fewer than QUEUE_AHEAD_MAX (150) rows may stand ahead of a replacement in the
# backend's direct-order loop queue, and each replacement written joins it, so one sweep
# re-places at most 150 orders even with that queue empty (the bench empties it before
# each batch). 140, as the cluster tests use, leaves a margin.
MAX_STALE = QUEUE_AHEAD_MAX
DEFAULT_STALE = 140


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="historical trade_orders rows")
    parser.add_argument("--audit", type=int, default=5_000_000, help="audit_logs rows")
    parser.add_argument(
        "--stale",
        type=int,
        default=DEFAULT_STALE,
        help=f"stale orders per recovery run (1..{MAX_STALE}: what one sweep may re-place, rule 10b)",
    )
    # A 140-order run lasts about a fifth of a second (a 1,000-order one lasted 1.5 s): more
    # of them, so a moment of other work on the machine moves the median less.
    parser.add_argument("--repeats", type=int, default=15, help="recovery runs per side, alternating")
    parser.add_argument("--sweeps", type=int, default=7, help="idle sweeps per side, alternating")
    parser.add_argument("--gets", type=int, default=5, help="timed GETs per admin page and side")
    parser.add_argument(
        "--cluster-runs",
        type=int,
        default=3,
        help="(d) runs per side, single server and Galera; 0 = skip (d)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args(argv)
    if not 1 <= args.stale <= MAX_STALE:
        parser.error(f"--stale must be 1..{MAX_STALE}")
    if args.orders < 1 or args.audit < 1 or min(args.repeats, args.sweeps, args.gets) < 1:
        parser.error("sizes and repeat counts must be positive")
    return args


def _django_setup() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tradeops.settings_test"
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    # Loading a million rows is one statement running for minutes: no read/write timeout
    # here (cron keeps the settings' defaults, which fail a hung server in seconds).
    for timeout in ("DATABASE_READ_TIMEOUT_SECONDS", "DATABASE_WRITE_TIMEOUT_SECONDS"):
        os.environ.setdefault(timeout, "0")
    import django

    django.setup()
    # The sweep logs every recovered order at INFO: keep the cost, send the lines to a file.
    RESULTS.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(RESULTS / "sweep.log", mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("recovery")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)


class Progress:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}

    def step(self, name: str, work: Any) -> Any:
        print(f"[{time.perf_counter() - self.started:7.1f}s] {name} ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        value = work()
        self.phases[name] = round(time.perf_counter() - began, 2)
        return value


def _generate(progress: Progress, args: argparse.Namespace, *, gateway_port: int) -> int:
    from bench import data

    biggest = max(args.orders, min(args.audit, data.AUDIT_CHUNK), args.stale, data.PROJECTS * 2)
    progress.step(f"numbers table 1..{biggest:,}", lambda: data.numbers_build(upto=biggest))
    runs = progress.step("trade_runs", lambda: data.runs_insert(orders=args.orders, clock=CLOCK))
    progress.step(
        f"{args.orders:,} historical orders", lambda: data.history_insert(orders=args.orders, clock=CLOCK)
    )
    progress.step("recent orders (NEW, not stale)", lambda: data.recent_insert(runs=runs, clock=CLOCK))
    progress.step(
        f"{args.audit:,} audit rows",
        lambda: data.audit_insert(total=args.audit, orders=args.orders, clock=CLOCK),
    )
    progress.step(
        f"settings, IB (api_mode ib, gateway stand-in on 127.0.0.1:{gateway_port}), guard rows",
        lambda: data.settings_insert(clock=CLOCK, gateway_port=gateway_port),
    )
    progress.step("ANALYZE TABLE", data.tables_analyze)
    return runs


def _quiesce(progress: Progress) -> dict[str, Any]:
    from bench.database import server_quiesce

    return progress.step("wait for InnoDB to flush the load", server_quiesce)


def _measure(progress: Progress, args: argparse.Namespace, runs: int) -> dict[str, Any]:
    from bench.admin_pages import admin_pages_measure
    from bench.idle import idle_sweep_measure
    from bench.recovery_run import recovery_measure

    return {
        "idle": progress.step("(a) idle sweep", lambda: idle_sweep_measure(clock=CLOCK, runs=args.sweeps)),
        "recovery": progress.step(
            "(b) recovery",
            lambda: recovery_measure(clock=CLOCK, stale=args.stale, runs=runs, repeats=args.repeats),
        ),
        "admin": progress.step("(c) admin pages", lambda: admin_pages_measure(gets=args.gets)),
        **_cluster(progress, args),
    }


def _cluster(progress: Progress, args: argparse.Namespace) -> dict[str, Any]:
    if args.cluster_runs < 1:
        return {}
    from bench.cluster import cluster_measure

    return {
        "cluster": progress.step(
            "(d) single server and 3-node Galera cluster",
            lambda: cluster_measure(orders=args.stale, repeats=args.cluster_runs),
        )
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    _django_setup()
    from django.test.utils import override_settings

    from bench import data, database, summary
    from recovery.tests.gateway import gateway_port

    progress = Progress()
    name = progress.step("create the bench database", database.bench_database_create)
    try:
        facts: dict[str, Any] = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "database": name,
            "clock": CLOCK.isoformat(),
            "arguments": {k: str(v) for k, v in vars(args).items()},
            **database.server_facts(),
            **database.git_facts(),
            "load_average_start": database.load_average(),
        }
        # A listener of this process on a free loopback port, for its lifetime: it answers
        # the sweep's TCP probe (rule 2) as the gateway would; (d)'s commands reach it too.
        runs = _generate(progress, args, gateway_port=gateway_port())
        facts["rows_before"] = database.row_counts()
        facts["quiesce"] = _quiesce(progress)
        # The bridge, and this "host"'s lock, spool and ledger folder (never the project's var/).
        with (
            tempfile.TemporaryDirectory() as bridge,
            tempfile.TemporaryDirectory() as host,
            override_settings(LEAN_BRIDGE_ROOT=Path(bridge), AUTO_RECOVER_LOCK_DIR=Path(host)),
        ):
            data.bridge_write(root=Path(bridge), clock=CLOCK)
            measured = _measure(progress, args, runs)
        facts["rows_after"] = database.row_counts()
        facts["load_average_end"] = database.load_average()
        facts["phase_seconds"] = progress.phases
        rows = summary.rows_build(measured, sweeps=args.sweeps, repeats=args.repeats, gets=args.gets)
        print(summary.header_text(facts))
        print(summary.table_text(rows))
        summary.report_write(args.json, rows=rows, facts=facts, details=measured)
        print(f"\nJSON: {args.json}")
        return 0 if all(row.passed is not False for row in rows) else 1
    finally:
        if not args.keep:
            database.bench_database_drop()


if __name__ == "__main__":
    sys.exit(main())
