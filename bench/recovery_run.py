"""(b) Recovering a batch of stale MKT orders: the sweep against the hand-written lower bound.

Each run gets a fresh, identical batch (only the client_order_id prefix differs); the sides
alternate so neither always runs on a warmer buffer pool. The sweep runs with the command's
time budget, as cron runs it. Two untimed runs are counted statement by statement: one as
configured, one with AUTO_RECOVER_FRESH_SECONDS far below the run's length, so the reads
again that keep a long run's picture fresh happen and their cost can be seen.

A batch is at most what one sweep may re-place under rule 10b: fewer than 150 rows may stand
ahead of a replacement in the backend's direct-order loop queue, and each replacement written
joins it. Before each batch a stand-in for the backend's loop sends what the run before left
waiting (data.backend_loop_stand_in), as the backend does within seconds, so every run starts
with that queue empty, whichever side wrote the replacements.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections
from django.test.utils import CaptureQueriesContext, override_settings

from bench.data import backend_loop_stand_in, replacements_age, stale_batch_insert
from bench.database import raw_connect, session_status
from bench.raw_baseline import raw_recover
from recovery.db.audit import ACTION_SWEEP, ACTOR_COMMAND
from recovery.db.routers import trading_alias
from recovery.management.commands.auto_recover import DEFAULT_MAX_SECONDS
from recovery.selectors import WAITING_SQL
from recovery.services import sweep_run
from recovery.sweep.results import SweepResult

# Server-side counters of the connection that did the work (SHOW SESSION STATUS).
COUNTERS = ("Questions", "Com_commit", "Com_select", "Com_update", "Com_insert", "Com_set_option")
# A second, small batch per side, beside each timed run: round trips and time per order apart
# from the per-sweep ones (a sweep re-places at most ~150 orders now, rule 10b, so what a
# sweep costs however many orders it has weighs on its rate far more than over 1,000).
SMALL_BATCH = 10
# A run of 140 orders (about a fifth of a second) outlasts this bound several times: the
# writer reads again every chunk. A read again itself takes a few ms here, well inside it.
SHORT_FRESH_SECONDS = 0.05
MSG_INCOMPLETE = "{side}: {done} of {wanted} orders recovered ({prefix}*); the bench data is wrong"
MSG_PARAMS_DIFFER = "the replacements' params differ between the sides: ours {ours}, baseline {baseline}"


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


def _batch_insert(*, label: str, count: int, runs: int, clock: dt.datetime, sent: list[int]) -> str:
    """A fresh batch whose run starts with the backend's loop queue empty (the stand-in sent
    the last run's replacements; how many goes to `sent`) and an empty rolling hour
    (data.replacements_age)."""
    sent.append(backend_loop_stand_in())
    replacements_age(clock=clock)
    return stale_batch_insert(label=label, count=count, runs=runs, clock=clock)


# Keys of a replacement's params whose values differ between two orders of the same run for
# reasons of their own: ids, client ids, times and the sweep's id.
VARYING = {"origin_order_id", "origin_client_order_id", "root_order_id", "root_client_order_id"}
VARYING |= {"sweep_id", "triggered_at", "signal_id"}


def _params_shape(value: Any) -> Any:
    """The params with the values that vary from order to order replaced by their type."""
    if isinstance(value, dict):
        return {k: type(v).__name__ if k in VARYING else _params_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_params_shape(v) for v in value]
    return value


def replacement_shape(prefix: str) -> dict[str, Any]:
    """The replacement of a batch's first order as written, before the stand-in sends it:
    its run_id and params, the values that vary from order to order replaced by their type."""
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(
            "SELECT run_id, status, params FROM trade_orders WHERE client_order_id = %s",
            [f"{prefix}000001-r1"],
        )
        run_id, status, params = cursor.fetchone()
    return {"run_id": run_id, "status": status, "params": _params_shape(json.loads(params))}


def params_compare(shapes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The replacement of each side's first order (same run, same row number): the same but
    for ids, times and the sweep id, or the baseline does other work than the sweep."""
    if shapes["ours"] != shapes["baseline"]:
        raise RuntimeError(MSG_PARAMS_DIFFER.format(**shapes))
    return shapes["ours"]


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


SENDER_WAITING_KIND = "per sweep: sender check, a replacement still waiting (rule 10b)"
SENDER_QUEUE_KIND = "per sweep: sender check, the loop's queue count (rule 10b)"
SENDER_KINDS = (SENDER_WAITING_KIND, SENDER_QUEUE_KIND)


def _sender_kind(head: str) -> str | None:
    """The two statements rule 10b's sender check adds to a sweep (its ib_settings row is read
    with the gates already): the waiting replacement, and the count of the loop's queue."""
    if head.startswith(WAITING_SQL.upper().split(" WHERE ")[0]):
        return SENDER_WAITING_KIND
    if (
        head.startswith("SELECT COUNT(*)")
        and "TRADE_ORDERS.RUN_ID IS NULL" in head
        and "TRADE_ORDERS.STATUS IN (" in head
    ):
        return SENDER_QUEUE_KIND
    return None


def _kind(sql: str) -> str:
    # Table names may come quoted (the ORM) or bare (the sweep's plain-SQL writes).
    head = sql.lstrip().upper().replace("`", "")
    if head in TRANSACTION:
        return head
    sender = _sender_kind(head)
    if sender is not None:
        return sender
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
        # Of the per-sweep statements, those of rule 10b's sender check.
        "sender_check_statements": {kind: kinds.count(kind) for kind in SENDER_KINDS},
        "sender_check_read_again_statements": sum(
            kinds.count(READ_AGAIN + kind.removeprefix("per sweep: ")) for kind in SENDER_KINDS
        ),
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


def _counted(
    *, label: str, clock: dt.datetime, stale: int, runs: int, strict: bool, sent: list[int]
) -> dict[str, Any]:
    """An untimed run under CaptureQueries: its statements by kind and its reads again.

    `strict`: a batch not wholly recovered is the bench's fault (raise); else it is reported.
    """
    connection = connections[trading_alias()]
    prefix = _batch_insert(label=label, count=stale, runs=runs, clock=clock, sent=sent)
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
    sent: list[int] = []  # replacements the stand-in for the backend's loop sent before each run
    try:
        counted = _counted(label="count", clock=clock, stale=stale, runs=runs, strict=True, sent=sent)
        samples: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
        small: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
        shapes: dict[str, dict[str, Any]] = {}
        for i in range(repeats):
            for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                label = f"{side}small{i}"
                prefix = _batch_insert(label=label, count=SMALL_BATCH, runs=runs, clock=clock, sent=sent)
                small[side].append(_side_run(side, raw=raw, clock=clock, stale=SMALL_BATCH))
                _batch_check(prefix=prefix, wanted=SMALL_BATCH, side=side)
                prefix = _batch_insert(label=f"{side}{i}", count=stale, runs=runs, clock=clock, sent=sent)
                samples[side].append(_side_run(side, raw=raw, clock=clock, stale=stale))
                _batch_check(prefix=prefix, wanted=stale, side=side)
                shapes.setdefault(side, replacement_shape(prefix))
        same_params = params_compare(shapes)
        # Last: an order it leaves NEW would stay a candidate of every run after it.
        with override_settings(AUTO_RECOVER_FRESH_SECONDS=SHORT_FRESH_SECONDS):
            short = _counted(label="short", clock=clock, stale=stale, runs=runs, strict=False, sent=sent)
        # Its replacements stay NEW, as they are in the seconds before the backend sends them:
        # (c)'s first orders page shows them, and its dry run says what the sweep would do.
    finally:
        raw.close()
    return {
        "stale": stale,
        "backend_loop_stand_in_sent": sent,
        "replacement_params": same_params,
        "counted_run": counted,
        "short_bound_run": short,
        "ours": _side_summary(samples["ours"], stale=stale),
        "baseline": _side_summary(samples["baseline"], stale=stale),
        "baseline_statements_per_order": statistics.median(
            s["statements_per_order"] for s in samples["baseline"]
        ),
        "round_trips": {side: _round_trips(samples[side], small[side], stale=stale) for side in samples},
        "time_split": {side: _time_split(samples[side], small[side], stale=stale) for side in samples},
        "small_batch": SMALL_BATCH,
    }


def _split(big: float, small: float, *, stale: int) -> dict[str, float]:
    """Two batch sizes, same code: (X(big) - X(small)) / (big - small) is what each order
    costs; the rest of X(small) is what a sweep costs however many orders it has."""
    per_order = (big - small) / (stale - SMALL_BATCH)
    return {"per_order": per_order, "per_sweep": small - per_order * SMALL_BATCH}


def _round_trips(
    samples: list[dict[str, Any]], small: list[dict[str, Any]], *, stale: int
) -> dict[str, float]:
    """Server round trips (Questions) of one more recovered order, and of the sweep around them."""
    return _split(
        statistics.median(s["server"]["Questions"] for s in samples),
        statistics.median(s["server"]["Questions"] for s in small),
        stale=stale,
    )


def _time_split(
    samples: list[dict[str, Any]], small: list[dict[str, Any]], *, stale: int
) -> dict[str, float]:
    """Wall seconds of one more recovered order, and of the sweep around them (medians)."""
    return _split(
        statistics.median(s["seconds"] for s in samples),
        statistics.median(s["seconds"] for s in small),
        stale=stale,
    )


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
