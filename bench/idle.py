"""(a) The idle sweep over the whole table: its queries, its time, and its candidate query's plan.

Baseline: the same sweep with its SELECTs on trade_orders forced to ignore every index that
can serve the candidate query (those starting with status or created_at: the patches'
(status, created_at) and (status, run_id, created_at)), i.e. the table scan the backend's
own sweep did. Ignoring one of them alone leaves the other to answer in a few rows.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.test.utils import CaptureQueriesContext

from bench.database import session_status
from recovery.db.audit import ACTOR_COMMAND
from recovery.db.routers import trading_alias
from recovery.ops.runs import heartbeat_prune, sweep_run_recorded
from recovery.services import sweep_run

INDEX = "idx_trade_orders_status_created_at"
FROM_ORDERS = "FROM `trade_orders`"
# The candidate query filters on status = 'NEW' and a created_at range, ordered by created_at.
SERVING_COLUMNS = ("status", "created_at")
SERVING_INDEXES_SQL = (
    "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
    "AND TABLE_NAME = 'trade_orders' AND SEQ_IN_INDEX = 1 AND COLUMN_NAME IN (%s, %s) ORDER BY INDEX_NAME"
)
HANDLER_READS = (
    "Handler_read_first",
    "Handler_read_key",
    "Handler_read_last",
    "Handler_read_next",
    "Handler_read_prev",
    "Handler_read_rnd",
    "Handler_read_rnd_next",
)
MSG_NOT_IDLE = "the idle sweep found {count} candidates; the bench data should hold none"
MSG_NO_CANDIDATE_QUERY = "no candidate query on trade_orders among the sweep's queries"


def serving_indexes() -> tuple[str, ...]:
    """trade_orders' indexes whose first column the candidate query filters or sorts on."""
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(SERVING_INDEXES_SQL, SERVING_COLUMNS)
        return tuple(str(row[0]) for row in cursor.fetchall())


def ignore_indexes(sql: str, indexes: Sequence[str]) -> str:
    names = ", ".join(f"`{name}`" for name in indexes)
    return sql.replace(FROM_ORDERS, f"{FROM_ORDERS} IGNORE INDEX ({names})", 1)


def _ignore_indexes_wrapper(
    execute: Callable, sql: str, params: Any, many: bool, context: Any, *, indexes: Sequence[str]
) -> Any:
    """connection.execute_wrapper: the sweep's SELECTs on trade_orders without those indexes."""
    if sql.lstrip().upper().startswith("SELECT") and FROM_ORDERS in sql:
        sql = ignore_indexes(sql, indexes)
    return execute(sql, params, many, context)


def _sweep_timed(*, clock: dt.datetime, wrapper: Callable | None) -> float:
    connection = connections[trading_alias()]
    started = time.perf_counter()
    if wrapper is not None:
        with connection.execute_wrapper(wrapper):
            result = sweep_run(now=clock, actor=ACTOR_COMMAND)
    else:
        result = sweep_run(now=clock, actor=ACTOR_COMMAND)
    elapsed = time.perf_counter() - started
    if result.scanned:
        raise RuntimeError(MSG_NOT_IDLE.format(count=result.scanned))
    return elapsed


def idle_sweep_measure(*, clock: dt.datetime, runs: int) -> dict[str, Any]:
    connection = connections[trading_alias()]
    ignored = serving_indexes()
    wrapper = functools.partial(_ignore_indexes_wrapper, indexes=ignored)
    sweep_run(now=clock, actor=ACTOR_COMMAND)  # warm: the exchange calendar, the connection
    with CaptureQueriesContext(connection) as ours:
        sweep_run(now=clock, actor=ACTOR_COMMAND)
    with CaptureQueriesContext(connection) as theirs, connection.execute_wrapper(wrapper):
        sweep_run(now=clock, actor=ACTOR_COMMAND)
    with CaptureQueriesContext(connection) as cron:
        sweep_run_recorded(now=clock, actor=ACTOR_COMMAND, exclusive=True, check_schema=True)
        heartbeat_prune(now=clock)
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for i in range(runs):
        for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
            times[side].append(_sweep_timed(clock=clock, wrapper=wrapper if side == "baseline" else None))
    candidate = next(
        (q["sql"] for q in ours if q["sql"].startswith("SELECT") and FROM_ORDERS in q["sql"]), None
    )
    if candidate is None:
        raise RuntimeError(MSG_NO_CANDIDATE_QUERY)
    return {
        "queries": len(ours),
        "cron_path_parts": cron_parts([q["sql"] for q in cron]),
        "queries_sql": [q["sql"] for q in ours],
        "baseline_queries": len(theirs),
        "cron_path_queries": len(cron),
        "cron_path_sql": [q["sql"][:300] for q in cron],
        "seconds": times["ours"],
        "baseline_seconds": times["baseline"],
        "median_seconds": statistics.median(times["ours"]),
        "baseline_median_seconds": statistics.median(times["baseline"]),
        "candidate_sql": candidate,
        "ignored_indexes": list(ignored),
        "plan": query_plan(candidate),
        "baseline_plan": query_plan(ignore_indexes(candidate, ignored)),
        "query_timing": query_timing(candidate, ignored=ignored, runs=runs),
    }


def cron_parts(sqls: list[str]) -> dict[str, int]:
    """The command's queries: schema check, lock, sweep, heartbeat (in that order)."""
    lock = next((i for i, sql in enumerate(sqls) if "GET_LOCK(" in sql), 0)
    release = next((i for i, sql in enumerate(sqls) if "RELEASE_LOCK(" in sql), len(sqls) - 1)
    return {
        "schema check (introspection)": lock,
        "named lock (GET_LOCK, RELEASE_LOCK)": 2,
        "sweep": release - lock - 1,
        "heartbeat row and prune": len(sqls) - release - 1,
    }


def _trade_orders_node(node: Any) -> dict[str, Any] | None:
    """The plan node reading trade_orders, wherever the JSON nests it (filesort, ...)."""
    if isinstance(node, dict):
        if node.get("table_name") == "trade_orders":
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _trade_orders_node(child)
        if found is not None:
            return found
    return None


def _handler_reads(cursor: Any, sql: str) -> dict[str, int]:
    """Rows the storage engine handed over for `sql`, from this session's Handler_read_* counters."""
    before = session_status(cursor, HANDLER_READS)
    again = session_status(cursor, HANDLER_READS)  # what SHOW STATUS itself costs
    cursor.execute(sql)
    cursor.fetchall()
    after = session_status(cursor, HANDLER_READS)
    return {k: after[k] - again[k] - (again[k] - before[k]) for k in HANDLER_READS}


def query_plan(sql: str) -> dict[str, Any]:
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        columns = [c[0] for c in cursor.description]
        explain = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        cursor.execute(f"ANALYZE FORMAT=JSON {sql}")
        analyze = analyze_json(cursor.fetchone()[0])
        handler = _handler_reads(cursor, sql)
    node = _trade_orders_node(analyze) or {}
    return {
        "sql": sql,
        "explain": explain,
        "analyze": analyze,
        "access_type": node.get("access_type"),
        "key": node.get("key"),
        "rows_estimate": node.get("rows"),
        "r_rows": node.get("r_rows"),
        "r_table_time_ms": node.get("r_table_time_ms"),
        "pages_accessed": (node.get("r_engine_stats") or {}).get("pages_accessed"),
        "handler_reads": handler,
        "handler_reads_total": sum(handler.values()),
    }


def query_timing(sql: str, *, ignored: Sequence[str], runs: int) -> dict[str, Any]:
    """The candidate query alone, with its indexes and ignoring them, alternating."""
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    with connections[trading_alias()].cursor() as cursor:
        for i in range(runs):
            for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                text = sql if side == "ours" else ignore_indexes(sql, ignored)
                started = time.perf_counter()
                cursor.execute(text)
                cursor.fetchall()
                times[side].append(time.perf_counter() - started)
    return {
        "seconds": times["ours"],
        "baseline_seconds": times["baseline"],
        "median_seconds": statistics.median(times["ours"]),
        "baseline_median_seconds": statistics.median(times["baseline"]),
    }


STRING_LINE = re.compile(r'^(\s*"[^"]+": ")(.*)("(?:,)?)$')


def analyze_json(text: str) -> dict[str, Any]:
    """ANALYZE FORMAT=JSON's output; MariaDB 10.11 leaves the quotes of '$."key"' unescaped."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    lines = []
    for line in text.splitlines():
        match = STRING_LINE.match(line)
        if match:
            head, value, tail = match.groups()
            line = head + re.sub(r'(?<!\\)"', r'\\"', value) + tail
        lines.append(line)
    return json.loads("\n".join(lines))
