"""Broker evidence and head-of-line costs, each beside its baseline in the same run.

    .venv/bin/python -m bench.evidence [--runs 100] [--orders 1000] [--lines 10000]
        [--backlog 100000] [--repeats 5] [--json PATH]

(e) Gathering the broker evidence for `--orders` stale orders spread over `--runs` run
    output folders, each with an execution_events.jsonl of `--lines` lines written over the
    last ten hours (orders an hour old: the read stops an hour back), beside the recovery of
    those orders itself, beside the same recovery with no run folders to read, and beside
    it with AUTO_RECOVER_FRESH_SECONDS far below its length (the writer reads the folders
    again for every chunk of orders, as a run longer than the bound does). Target: that
    run re-places every order too.
(f) A sweep behind `--backlog` stale orders of a halted project (always skipped), with a
    few healthy stale orders behind them, beside the idle sweep over the same table (its
    clock set before those orders were stale). Target: within 10x of the idle sweep.

The orders are those of finished runs without a decision snapshot, re-placed as direct
orders (replace_run_orders, rule 7c). One sweep re-places at most what the backend's
direct-order loop queue takes (rule 10b: fewer than 150 rows ahead of each replacement),
so `--orders` is at most 150, and before each sweep a stand-in for the backend's loop sends
the replacements the sweep before left waiting (bench.data.backend_loop_stand_in).
ib_settings points at a loopback listener of this process standing in for the IB gateway.

Runs on MariaDB/MySQL only, in test_tradeops_bench_evidence (dropped afterwards).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "mysql://root@127.0.0.1:3306/test_tradeops_bench_evidence"
RESULTS = Path(__file__).resolve().parent / "results"
CLOCK = dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)  # Tuesday 11:00 New York
NY_TODAY = dt.date(2026, 11, 24)
HALTED_PROJECT = 900
MAX_BACKLOG_RATIO = 10.0
# A run of 140 orders with the folders takes about two tenths of a second: it outlasts this
# bound two or three times. A read again of 100 folders of 10,000-line files takes 20 to 75 ms
# here (ledgers warm) and must end inside the bound, or the writer stops and leaves the rest
# NEW for the next run (services.fresh, MSG_READ_TOO_SLOW): at 0.05 s most runs re-placed none.
SHORT_FRESH_SECONDS = 0.1
SIDES = ("recovery", "recovery_no_folders", "recovery_short_bound")
DEFAULT_ORDERS = 140  # what one sweep may re-place, with a margin (rule 10b; see bench.run)
MAX_ORDERS = 150  # recovery.sweep.placement.QUEUE_AHEAD_MAX
# Replacements the stand-in for the backend's loop sent before each sweep, in order.
STAND_IN_SENT: list[int] = []


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="run output folders")
    parser.add_argument(
        "--orders",
        type=int,
        default=DEFAULT_ORDERS,
        help=f"stale orders to recover per sweep, over the runs (1..{MAX_ORDERS}: rule 10b)",
    )
    parser.add_argument("--lines", type=int, default=10_000, help="lines per execution_events.jsonl")
    parser.add_argument("--backlog", type=int, default=100_000, help="always-skipped stale orders")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side, alternating")
    parser.add_argument("--json", type=Path, default=RESULTS / "evidence.json")
    args = parser.parse_args(argv)
    if min(args.runs, args.orders, args.lines, args.backlog, args.repeats) < 1 or args.orders > MAX_ORDERS:
        parser.error(
            f"sizes must be positive, --orders at most {MAX_ORDERS} (the backend's loop queue, rule 10b)"
        )
    return args


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _folders_write(root: Path, *, runs: int, lines: int) -> list[Path]:
    """Each run's folder with `lines` events of other orders over the ten hours before CLOCK."""
    folders = []
    step = dt.timedelta(hours=10) / lines
    for run in range(runs):
        folder = root / f"run_{run}"
        folder.mkdir(parents=True)
        with (folder / "execution_events.jsonl").open("w") as handle:
            for i in range(lines):
                at = CLOCK - dt.timedelta(hours=10) + step * i
                event = {
                    "tag": f"oi_{run}_{i}",
                    "status": "Filled" if i % 3 else "Submitted",
                    "order_id": i,
                    "filled": 10 if i % 3 else 0,
                    "fill_price": 101.25,
                    "time": _stamp(at),
                    "symbol": "AAPL",
                    "direction": "Buy",
                    "exec_id": f"e{run}.{i}",
                    "message": "",
                }
                handle.write(json.dumps(event) + "\n")
        folders.append(folder)
    return folders


def _stale_insert(*, label: str, count: int, run_ids: list[int | None], created: dt.datetime) -> list[int]:
    from recovery.db.models import TradeOrder

    rows = [
        TradeOrder(
            client_order_id=f"{label}-{i:06d}",
            run_id=run_ids[i % len(run_ids)],
            symbol="AAPL",
            side="BUY",
            quantity=10,
            order_type="MKT",
            status="NEW",
            filled_quantity=0,
            params={},
            created_at=created,
            updated_at=created,
        )
        for i in range(count)
    ]
    for start in range(0, len(rows), 5000):
        TradeOrder.objects.bulk_create(rows[start : start + 5000])
    return list(
        TradeOrder.objects.filter(client_order_id__startswith=f"{label}-").values_list("id", flat=True)
    )


def _recover(*, orders: int, fresh_seconds: float | None) -> tuple[float, Any]:
    """One sweep over the batch in an empty rolling hour, the backend's loop queue emptied by
    the stand-in first; `fresh_seconds`: the bound, else the settings'."""
    from django.test.utils import override_settings

    from bench.data import backend_loop_stand_in, replacements_age
    from recovery.services import sweep_run

    STAND_IN_SENT.append(backend_loop_stand_in())
    replacements_age(clock=CLOCK)
    bound = {} if fresh_seconds is None else {"AUTO_RECOVER_FRESH_SECONDS": fresh_seconds}
    with override_settings(**bound):
        return _timed(lambda: sweep_run(now=CLOCK, actor="bench", limit=orders))


def _gather_cold(ids: list[int], *, ledgers: Path) -> tuple[float, Any]:
    """The evidence of the orders `ids`, read with an empty ledger folder: every events file
    from the top, as on a host's first run (gates.events; later runs read on from there)."""
    from django.test.utils import override_settings

    from recovery import selectors
    from recovery.db.models import TradeOrder
    from recovery.sweep.config import AutoRecoveryConfig

    rows = list(TradeOrder.objects.filter(pk__in=ids))
    facts = selectors.run_facts_get(r.run_id for r in rows)
    runs = {k: (f.project_id, f.mode) for k, f in facts.items()}
    snapshots = [selectors.order_snapshot(r, runs=runs) for r in rows]
    with override_settings(AUTO_RECOVER_LOCK_DIR=ledgers):
        sweep = selectors.sweep_gates_get(config=AutoRecoveryConfig(), now=CLOCK, probe=False)
        return _timed(lambda: selectors.evidence_get(orders=snapshots, runs=facts, sweep=sweep, now=CLOCK))


def evidence_measure(*, root: Path, runs: int, orders: int, lines: int, repeats: int) -> dict[str, Any]:
    from django.conf import settings

    from recovery.db.models import TradeOrder, TradeRun

    folders = _folders_write(root, runs=runs, lines=lines)
    # Finished runs: a run that has not ended owns its orders (rule 3b).
    with_folders = [
        TradeRun.objects.create(
            project_id=1, mode="paper", status="done", params={"lean_execution": {"output_dir": str(f)}}
        ).pk
        for f in folders
    ]
    without = [TradeRun.objects.create(project_id=1, mode="paper", status="done").pk for _ in folders]
    created = CLOCK - dt.timedelta(hours=1)
    # Untimed, one order per folder: the host's ledgers read every file once, so the sweeps
    # below read on from there, as every cron run after the first does (`orders` folders a
    # sweep, what one sweep may re-place).
    for start in range(0, len(with_folders), orders):
        part = with_folders[start : start + orders]
        _stale_insert(label=f"warm{start}", count=len(part), run_ids=part, created=created)
        _recover(orders=len(part), fresh_seconds=None)
    samples: dict[str, list[float]] = {"gather": [], **{side: [] for side in SIDES}}
    reads_again: dict[str, list[int]] = {side: [] for side in SIDES}
    held: list[dict[str, Any]] = []  # the short-bound runs: orders not re-placed, and why
    gathered_report: dict[str, Any] = {}
    for repeat in range(repeats):
        for side in SIDES[repeat % len(SIDES) :] + SIDES[: repeat % len(SIDES)]:
            run_ids = without if side == "recovery_no_folders" else with_folders
            ids = _stale_insert(label=f"{side}-{repeat}", count=orders, run_ids=run_ids, created=created)
            if side == "recovery":
                host = Path(settings.AUTO_RECOVER_LOCK_DIR)
                seconds, gathered = _gather_cold(ids, ledgers=host / f"first-run-{repeat}")
                samples["gather"].append(seconds)
                gathered_report = gathered.report
            short = side == "recovery_short_bound"
            seconds, result = _recover(orders=orders, fresh_seconds=SHORT_FRESH_SECONDS if short else None)
            if result.replaced != orders and not short:
                raise RuntimeError(f"{side}: expected {orders} replacements, got {result.counts()}")
            if short:
                # A finding about the writer, not the bench data: reported; what it left NEW
                # is retired, or every later run would find one candidate too many.
                held.append({"not_replaced": orders - result.replaced, "reasons": result.reasons()})
                TradeOrder.objects.filter(pk__in=ids, status="NEW").update(status="CANCELED")
            samples[side].append(seconds)
            reads_again[side].append(result.evidence_reads_again)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "samples": samples,
        "medians": medians,
        "reads_again": reads_again,
        "short_bound_runs": held,
        "short_bound_all_replaced": all(h["not_replaced"] == 0 for h in held),
        "first_gather_vs_recovery": medians["gather"] / medians["recovery"],
        "recovery_vs_no_folders": medians["recovery"] / medians["recovery_no_folders"],
        "short_bound_vs_recovery": medians["recovery_short_bound"] / medians["recovery"],
        "file_bytes": sum((f / "execution_events.jsonl").stat().st_size for f in folders),
        "gathered": gathered_report,
    }


def backlog_measure(*, backlog: int, repeats: int) -> dict[str, Any]:
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from bench.data import backend_loop_stand_in, replacements_age
    from recovery.db.models import TradeGuardState, TradeRun
    from recovery.db.routers import trading_alias
    from recovery.services import sweep_run

    TradeGuardState.objects.create(
        project_id=HALTED_PROJECT, mode="paper", trade_date=NY_TODAY, status="halted"
    )
    halted_runs = [
        TradeRun.objects.create(project_id=HALTED_PROJECT, mode="paper", status="done").pk for _ in range(10)
    ]
    created = CLOCK - dt.timedelta(minutes=30)
    STAND_IN_SENT.append(backend_loop_stand_in())  # (e)'s last replacements, sent
    _stale_insert(label="halted", count=backlog, run_ids=halted_runs, created=created)
    healthy = _stale_insert(
        label="healthy", count=5, run_ids=[None], created=created + dt.timedelta(minutes=1)
    )
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute("ANALYZE TABLE trade_orders")
        cursor.fetchall()
    replacements_age(clock=CLOCK)
    first = sweep_run(now=CLOCK, actor="bench", limit=200)
    recovered = sorted(o.id for o in first.orders if o.decision.value == "replace")
    if recovered != sorted(healthy):
        raise RuntimeError(f"the healthy orders behind the backlog were not recovered: {first.counts()}")
    idle_clock = created - dt.timedelta(minutes=5)  # before any of them was stale: nothing to do
    connection = connections[trading_alias()]
    queries: dict[str, int] = {}
    for side, clock in (("backlog", CLOCK), ("idle", idle_clock)):
        with CaptureQueriesContext(connection) as captured:
            result = sweep_run(now=clock, actor="bench")
        queries[side] = len(captured)
        if side == "idle" and result.scanned:
            raise RuntimeError(f"the idle sweep found candidates: {result.counts()}")
        if side == "backlog" and (set(result.reasons()) != {"guard_halted"} or result.cancelled):
            raise RuntimeError(f"the backlog sweep should only skip: {result.reasons()}")
    samples: dict[str, list[float]] = {"backlog": [], "idle": []}
    for repeat in range(repeats):
        for side in ("backlog", "idle") if repeat % 2 == 0 else ("idle", "backlog"):
            seconds, _ = _timed(
                lambda s=side: sweep_run(now=CLOCK if s == "backlog" else idle_clock, actor="bench")
            )
            samples[side].append(seconds)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "backlog": backlog,
        "healthy_recovered_behind_it": len(recovered),
        "first_run_counts": first.counts(),
        "queries": queries,
        "samples": samples,
        "medians": medians,
        "ratio": medians["backlog"] / medians["idle"],
    }


def table_text(evidence: dict[str, Any], backlog: dict[str, Any], args: argparse.Namespace) -> str:
    from django.conf import settings

    m, b, again = evidence["medians"], backlog["medians"], evidence["reads_again"]
    short_label = f"with folders, bound {SHORT_FRESH_SECONDS:g} s"
    lines = [
        f"(e) evidence: {args.orders} stale orders over {args.runs} run folders, "
        f"{args.lines:,}-line event files ({evidence['file_bytes'] / 1e6:,.1f} MB on disk)",
        f"    gathering, empty ledger    {m['gather'] * 1000:9.1f} ms  "
        f"({evidence['gathered'].get('events_bytes_read', 0) / 1e6:,.1f} MB, "
        f"{evidence['gathered'].get('events_lines_read', 0):,} lines read: a host's first run)",
        f"    recovery, with the folders {m['recovery'] * 1000:9.1f} ms  "
        f"ledgers warm; the first gathering = {evidence['first_gather_vs_recovery']:.2f}x it; "
        f"reads again per run {_listed(again['recovery'])} (bound {settings.AUTO_RECOVER_FRESH_SECONDS:g} s)",
        f"    recovery, no folders       {m['recovery_no_folders'] * 1000:9.1f} ms  "
        f"with folders / without = {evidence['recovery_vs_no_folders']:.2f}x",
        f"    {short_label:<27}{m['recovery_short_bound'] * 1000:9.1f} ms  "
        f"= {evidence['short_bound_vs_recovery']:.2f}x the recovery with folders; reads again per run "
        f"{_listed(again['recovery_short_bound'])}; not re-placed "
        f"{_listed([h['not_replaced'] for h in evidence['short_bound_runs']])} (target none): "
        + ("PASS" if evidence["short_bound_all_replaced"] else "FAIL"),
        f"(f) a sweep behind {backlog['backlog']:,} always-skipped stale orders "
        f"({backlog['healthy_recovered_behind_it']} healthy ones behind them recovered on the first run)",
        f"    behind the backlog         {b['backlog'] * 1000:9.1f} ms  "
        f"{backlog['queries']['backlog']} queries",
        f"    idle sweep, same table     {b['idle'] * 1000:9.1f} ms  {backlog['queries']['idle']} queries",
        f"    ratio {backlog['ratio']:.2f}x (target within {MAX_BACKLOG_RATIO:.0f}x): "
        + ("PASS" if backlog["ratio"] <= MAX_BACKLOG_RATIO else "FAIL"),
        "before each recovery sweep a stand-in for the backend's direct-order loop sent the "
        "replacements waiting for it (SUBMITTED, direct_retry.pending false): "
        f"{len(STAND_IN_SENT)} times, {sum(STAND_IN_SENT):,} rows",
    ]
    return "\n".join(lines)


def _listed(values: list[int]) -> str:
    return ", ".join(map(str, values))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tradeops.settings_test"
    os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    import logging

    import django

    django.setup()
    logging.getLogger("recovery").setLevel(logging.WARNING)  # one INFO line per recovered order
    from django.test.utils import override_settings

    from bench import database
    from recovery.db.models import IbSettings, TradeSettings
    from recovery.tests.gateway import gateway_port

    database.bench_database_create()
    try:
        TradeSettings.objects.create(
            auto_recovery={
                # One batch a sweep, and an hour (emptied before each run, data.replacements_age)
                # that allows it: as in bench.data.SETTINGS.
                "max_replacements_per_sweep": MAX_ORDERS,
                "max_replacements_per_hour": MAX_ORDERS,
                "allow_replace_outside_rth": True,
                # The runs here have no decision snapshot: the backend never resumes them (7c).
                "replace_run_orders": True,
            }
        )
        # api_mode 'ib' at a loopback listener of this process that answers the sweep's TCP
        # probe as the gateway would: the sweep re-places only then (rules 2, 10b).
        IbSettings.objects.create(host="127.0.0.1", port=gateway_port(), api_mode="ib", mode="paper")
        # The bridge, and this "host"'s ledgers of the events files (never the project's var/).
        with (
            tempfile.TemporaryDirectory() as bridge,
            tempfile.TemporaryDirectory() as host,
            override_settings(LEAN_BRIDGE_ROOT=Path(bridge), AUTO_RECOVER_LOCK_DIR=Path(host)),
        ):
            evidence = evidence_measure(
                root=Path(bridge), runs=args.runs, orders=args.orders, lines=args.lines, repeats=args.repeats
            )
            backlog = backlog_measure(backlog=args.backlog, repeats=args.repeats)
        print(table_text(evidence, backlog, args))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        facts = {
            **database.server_facts(),
            **database.git_facts(),
            "arguments": {k: str(v) for k, v in vars(args).items()},
        }
        report = {"facts": facts, "evidence": evidence, "backlog": backlog, "stand_in_sent": STAND_IN_SENT}
        args.json.write_text(json.dumps(report, indent=2))
        print(f"JSON: {args.json}")
        return 0 if backlog["ratio"] <= MAX_BACKLOG_RATIO and evidence["short_bound_all_replaced"] else 1
    finally:
        database.bench_database_drop()


if __name__ == "__main__":
    sys.exit(main())
