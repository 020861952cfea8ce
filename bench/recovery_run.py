"""(b) Recovering a batch of stale MKT orders: the sweep against the hand-written lower bound.

Each run gets a fresh, identical batch (only the client_order_id prefix differs); the sides
alternate so neither always runs on a warmer buffer pool.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.test.utils import CaptureQueriesContext

from bench.data import stale_batch_insert
from bench.database import raw_connect, session_status
from bench.raw_baseline import raw_recover
from recovery.db.audit import ACTION_SWEEP, ACTOR_COMMAND
from recovery.db.routers import trading_alias
from recovery.services import sweep_run

# Server-side counters of the connection that did the work (SHOW SESSION STATUS).
COUNTERS = ("Questions", "Com_commit", "Com_select", "Com_update", "Com_insert", "Com_set_option")
SMALL_BATCH = 10  # a second, small batch per side: round trips per order apart from the per-sweep ones
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


def _side_run(side: str, *, raw: Any, clock: dt.datetime, stale: int) -> dict[str, Any]:
    if side == "ours":
        with connections[trading_alias()].cursor() as cursor:
            box = _timed(cursor, lambda: sweep_run(now=clock, actor=ACTOR_COMMAND, limit=stale))
        recovered = box.pop("result").replaced
    else:
        with raw.cursor() as cursor:
            box = _timed(cursor, lambda: raw_recover(raw, now=clock, limit=stale))
        raw.commit()
        raw_run = box.pop("result")
        recovered = raw_run.recovered
        box["statements_per_order"] = (raw_run.statements - raw_run.per_sweep) / max(recovered, 1)
    return {**box, "recovered": recovered}


TRANSACTION = ("BEGIN", "COMMIT", "ROLLBACK")  # Django logs these beside the SQL


def _kind(sql: str) -> str:
    # Table names may come quoted (the ORM) or bare (the sweep's plain-SQL writes).
    head = sql.lstrip().upper().replace("`", "")
    if head in TRANSACTION:
        return head
    if head.startswith("SELECT") and "FOR UPDATE" in head:
        return "lock (SELECT ... FOR UPDATE SKIP LOCKED)"
    if head.startswith("UPDATE TRADE_ORDERS"):
        return "cancel (conditional UPDATE)"
    if head.startswith("INSERT INTO TRADE_ORDERS"):
        return "replacement (INSERT trade_orders)"
    if head.startswith("INSERT INTO AUDIT_LOGS"):
        return SWEEP_AUDIT_KIND if ACTION_SWEEP in sql else "order audit rows (one INSERT)"
    return "per sweep: " + head.split(" WHERE ")[0][:60]


SWEEP_AUDIT_KIND = "per sweep: audit row of the sweep"


def statement_kinds(sqls: list[str]) -> tuple[dict[str, int], int]:
    """Statements by kind, and how many belong to the sweep rather than to one order.

    The sweep's own audit row commits in its own transaction: its BEGIN and COMMIT are
    the sweep's too.
    """
    kinds = [_kind(sql) for sql in sqls]
    per_sweep = set()
    for i, kind in enumerate(kinds):
        if kind.startswith("per sweep"):
            per_sweep.add(i)
            if kind == SWEEP_AUDIT_KIND:
                per_sweep.update(j for j in (i - 1, i + 1) if 0 <= j < len(kinds) and kinds[j] in TRANSACTION)
    return dict(Counter(kinds)), len(per_sweep)


def recovery_measure(*, clock: dt.datetime, stale: int, runs: int, repeats: int) -> dict[str, Any]:
    connection = connections[trading_alias()]
    database = str(connection.settings_dict["NAME"])
    raw = raw_connect(database=database)
    try:
        # A counted (untimed) run of the sweep: which statements, how many.
        prefix = stale_batch_insert(label="count", count=stale, runs=runs, clock=clock)
        with CaptureQueriesContext(connection) as captured:
            counted = sweep_run(now=clock, actor=ACTOR_COMMAND, limit=stale)
        _batch_check(prefix=prefix, wanted=stale, side="ours (counted run)")
        sqls = [q["sql"] for q in captured]
        kinds, fixed = statement_kinds(sqls)
        samples: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
        small: dict[str, dict[str, Any]] = {}
        for side in ("ours", "baseline"):
            prefix = stale_batch_insert(label=f"{side}small", count=SMALL_BATCH, runs=runs, clock=clock)
            small[side] = _side_run(side, raw=raw, clock=clock, stale=SMALL_BATCH)
            _batch_check(prefix=prefix, wanted=SMALL_BATCH, side=side)
        for i in range(repeats):
            for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                prefix = stale_batch_insert(label=f"{side}{i}", count=stale, runs=runs, clock=clock)
                samples[side].append(_side_run(side, raw=raw, clock=clock, stale=stale))
                _batch_check(prefix=prefix, wanted=stale, side=side)
    finally:
        raw.close()
    return {
        "stale": stale,
        "counted_run": {
            "counts": counted.counts(),
            "statements": len(sqls),
            "per_sweep_statements": fixed,
            "statement_kinds": kinds,
        },
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
    }
