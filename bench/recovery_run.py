"""(b) Recovering a batch of stale MKT orders: the sweep against the hand-written lower bound.

Each run gets a fresh, identical batch (only the client_order_id prefix differs); the sides
alternate so neither always runs on a warmer buffer pool. The sweep runs with the command's
time budget, as cron runs it. Two untimed runs are counted statement by statement: one as
configured, one with AUTO_RECOVER_FRESH_SECONDS far below the run's length, so the reads
again that keep a long run's picture fresh happen and their cost can be seen.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections
from django.test.utils import CaptureQueriesContext, override_settings

from bench.data import replacements_age, stale_batch_insert
from bench.database import raw_connect, session_status
from bench.raw_baseline import raw_recover
from recovery.db.audit import ACTION_SWEEP, ACTOR_COMMAND
from recovery.db.routers import trading_alias
from recovery.management.commands.auto_recover import DEFAULT_MAX_SECONDS
from recovery.services import sweep_run
from recovery.sweep.results import SweepResult

# Server-side counters of the connection that did the work (SHOW SESSION STATUS).
COUNTERS = ("Questions", "Com_commit", "Com_select", "Com_update", "Com_insert", "Com_set_option")
SMALL_BATCH = 10  # a second, small batch per side: round trips per order apart from the per-sweep ones
# A run of 1,000 orders outlasts this bound several times: the writer reads again every chunk.
SHORT_FRESH_SECONDS = 0.5
MSG_INCOMPLETE = "{side}: {done} of {wanted} orders recovered ({prefix}*); the bench data is wrong"


def _batch_check(*, prefix: str, wanted: int, side: str) -> None:
    """Every order of the batch cancelled and re-placed exactly once."""
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT SUM(status = 'CANCELED' AND client_order_id NOT LIKE %s), "
            "SUM(status = 'NEW' AND client_order_id LIKE %s) FROM trade_orders WHERE client_order_id LIKE %s",
            [f"{prefix}%-r%", f"{prefix}%-r1", f"{prefix}%"],
        )
        cancelled, replacements = (int(v or 0) for v in cursor.fetchone())
    if cancelled != wanted or replacements != wanted:
        done = min(cancelled, replacements)
        raise RuntimeError(MSG_INCOMPLETE.format(side=side, done=done, wanted=wanted, prefix=prefix))


def _batch_insert(*, label: str, count: int, runs: int, clock: dt.datetime) -> str:
    """A fresh batch whose run starts with an empty rolling hour (data.replacements_age)."""
    replacements_age(clock=clock)
    return stale_batch_insert(label=label, count=count, runs=runs, clock=clock)


def _status_delta(cursor: Any, run: Any) -> dict[str, int]:
    """Counters of this connection spent by run(); the cost of SHOW STATUS itself removed."""
    first = session_status(cursor, COUNTERS)
    second = session_status(cursor, COUNTERS)
    run()
    third = session_status(cursor, COUNTERS)
    return {k: third[k] - second[k] - (second[k] - first[k]) for k in COUNTERS}


def _timed(cursor: Any, work: Callable[[], Any]) -> dict[str, Any]:
    """work()'s result, wall and CPU seconds, and its connection's server counters."""
    box: dict[str, Any] = {}

    def run() -> None:
        started, cpu = time.perf_counter(), time.process_time()
        box["result"] = work()
        box["seconds"] = time.perf_counter() - started
        # This process's CPU (Python, the driver): what the ORM path adds over the raw one.
        box["cpu_seconds"] = time.process_time() - cpu

    box["server"] = _status_delta(cursor, run)
    return box


def _sweep(*, clock: dt.datetime, stale: int) -> SweepResult:
    return sweep_run(now=clock, actor=ACTOR_COMMAND, limit=stale, max_seconds=DEFAULT_MAX_SECONDS)


def _side_run(side: str, *, raw: Any, clock: dt.datetime, stale: int) -> dict[str, Any]:
    if side == "ours":
        with connections[trading_alias()].cursor() as cursor:
            box = _timed(cursor, lambda: _sweep(clock=clock, stale=stale))
        result = box.pop("result")
        recovered = result.replaced
        box["evidence_reads_again"] = result.evidence_reads_again
    else:
        with raw.cursor() as cursor:
            box = _timed(cursor, lambda: raw_recover(raw, now=clock, limit=stale))
        raw.commit()
        raw_run = box.pop("result")
        recovered = raw_run.recovered
        box["statements_per_order"] = (raw_run.statements - raw_run.per_sweep) / max(recovered, 1)
    return {**box, "recovered": recovered}


TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK")  # Django logs these beside the SQL
LOCK_KIND = "lock (SELECT ... FOR UPDATE SKIP LOCKED)"
IN_ORDER, READ_AGAIN = "in the order's transaction: ", "read again (a transaction of its own): "


def _kind(sql: str) -> str:
    # Table names may come quoted (the ORM) or bare (the sweep's plain-SQL writes).
    head = sql.lstrip().upper().replace("`", "")
    if head in TRANSACTION:
        return head
    if head.startswith("SELECT") and "FOR UPDATE" in head:
        return LOCK_KIND
    if head.startswith("UPDATE TRADE_ORDERS"):
        return "cancel (conditional UPDATE)"
    if head.startswith("INSERT INTO TRADE_ORDERS"):
        return "replacement (INSERT trade_orders)"
    if head.startswith("INSERT INTO AUDIT_LOGS"):
        return SWEEP_AUDIT_KIND if ACTION_SWEEP in sql else "order audit rows (one INSERT)"
    return "per sweep: " + head.split(" WHERE ")[0][:60]


SWEEP_AUDIT_KIND = "per sweep: audit row of the sweep"


def statement_kinds(sqls: list[str]) -> dict[str, Any]:
    """Statements by kind: those of one order, those of the sweep, those of its reads again.

    After the writer's BEGIN (autocommit off), each COMMIT or ROLLBACK ends a transaction.
    One that locks an order is that order's, whatever else it reads (a SELECT in it is
    labelled as such). One that locks nothing is a read again (services.fresh), unless it
    writes the sweep's own audit row. Every BEGIN, and what runs before the first (the
    plan), is the sweep's.
    """
    kinds = [_kind(sql) for sql in sqls]
    start = kinds.index("BEGIN") + 1 if "BEGIN" in kinds else len(kinds)
    per_sweep = set(range(start)) | {i for i, kind in enumerate(kinds) if kind == "BEGIN"}
    again = set()
    for begin, end in _transactions(kinds, start=start):
        members = range(begin, end + 1)
        if any(kinds[i] == LOCK_KIND for i in members):
            for i in members:
                if kinds[i].startswith("per sweep: "):
                    kinds[i] = IN_ORDER + kinds[i].removeprefix("per sweep: ")
        elif any(kinds[i] == SWEEP_AUDIT_KIND for i in members):
            per_sweep.update(members)
        else:
            again.update(members)
            for i in members:
                kinds[i] = READ_AGAIN + kinds[i].removeprefix("per sweep: ")
    return {
        "statement_kinds": dict(Counter(kinds)),
        "statements": len(kinds),
        "per_sweep_statements": len(per_sweep),
        "read_again_statements": len(again),
    }


def _transactions(kinds: list[str], *, start: int) -> list[tuple[int, int]]:
    """(first, last) index of each transaction from `start` on, BEGINs left out."""
    spans, begin = [], None
    for i in range(start, len(kinds)):
        if kinds[i] == "BEGIN":
            continue
        begin = i if begin is None else begin
        if kinds[i] in ("COMMIT", "ROLLBACK"):
            spans.append((begin, i))
            begin = None
    return spans


def _counted(*, label: str, clock: dt.datetime, stale: int, runs: int, strict: bool) -> dict[str, Any]:
    """An untimed run under CaptureQueries: its statements by kind and its reads again.

    `strict`: a batch not wholly recovered is the bench's fault (raise); else it is reported.
    """
    connection = connections[trading_alias()]
    prefix = _batch_insert(label=label, count=stale, runs=runs, clock=clock)
    # CaptureQueriesContext counts by the log's length, which stops growing at 9,000.
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as captured:
        result = _sweep(clock=clock, stale=stale)
    statements = statement_kinds([q["sql"] for q in captured])
    connection.queries_log.clear()
    if strict:
        _batch_check(prefix=prefix, wanted=stale, side=f"ours ({label} run)")
    return {
        "fresh_seconds": float(settings.AUTO_RECOVER_FRESH_SECONDS),
        "counts": result.counts(),
        "reasons": result.reasons(),
        "evidence_reads_again": result.evidence_reads_again,
        **statements,
    }


def recovery_measure(*, clock: dt.datetime, stale: int, runs: int, repeats: int) -> dict[str, Any]:
    connection = connections[trading_alias()]
    database = str(connection.settings_dict["NAME"])
    raw = raw_connect(database=database)
    try:
        counted = _counted(label="count", clock=clock, stale=stale, runs=runs, strict=True)
        samples: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
        small: dict[str, dict[str, Any]] = {}
        for side in ("ours", "baseline"):
            prefix = _batch_insert(label=f"{side}small", count=SMALL_BATCH, runs=runs, clock=clock)
            small[side] = _side_run(side, raw=raw, clock=clock, stale=SMALL_BATCH)
            _batch_check(prefix=prefix, wanted=SMALL_BATCH, side=side)
        for i in range(repeats):
            for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                prefix = _batch_insert(label=f"{side}{i}", count=stale, runs=runs, clock=clock)
                samples[side].append(_side_run(side, raw=raw, clock=clock, stale=stale))
                _batch_check(prefix=prefix, wanted=stale, side=side)
        # Last: an order it leaves NEW would stay a candidate of every run after it.
        with override_settings(AUTO_RECOVER_FRESH_SECONDS=SHORT_FRESH_SECONDS):
            short = _counted(label="short", clock=clock, stale=stale, runs=runs, strict=False)
    finally:
        raw.close()
    return {
        "stale": stale,
        "counted_run": counted,
        "short_bound_run": short,
        "ours": _side_summary(samples["ours"], stale=stale),
        "baseline": _side_summary(samples["baseline"], stale=stale),
        "baseline_statements_per_order": statistics.median(
            s["statements_per_order"] for s in samples["baseline"]
        ),
        "round_trips": {side: _round_trips(samples[side], small[side], stale=stale) for side in samples},
    }


def _round_trips(samples: list[dict[str, Any]], small: dict[str, Any], *, stale: int) -> dict[str, float]:
    """Server round trips (Questions) of one more recovered order, and of the sweep around them.

    Two batch sizes, same code: (Q(big) - Q(small)) / (big - small) is what each order
    costs; the rest of Q(small) is what a sweep costs however many orders it has.
    """
    big = statistics.median(s["server"]["Questions"] for s in samples)
    per_order = (big - small["server"]["Questions"]) / (stale - SMALL_BATCH)
    return {"per_order": per_order, "per_sweep": small["server"]["Questions"] - per_order * SMALL_BATCH}


def _side_summary(samples: list[dict[str, Any]], *, stale: int) -> dict[str, Any]:
    seconds = statistics.median(s["seconds"] for s in samples)
    per_order = {k: statistics.median(s["server"][k] / s["recovered"] for s in samples) for k in COUNTERS}
    return {
        "runs": samples,
        "median_seconds": seconds,
        "orders_per_second": stale / seconds,
        "client_cpu_ms_per_order": statistics.median(
            1000 * s["cpu_seconds"] / s["recovered"] for s in samples
        ),
        "server_per_order": per_order,
        "evidence_reads_again": [s.get("evidence_reads_again", 0) for s in samples],
    }
