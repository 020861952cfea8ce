"""(a) The idle sweep over the whole table: its queries, its time, and its candidate query's plan.

Baseline: the same sweep with the candidate query forced to ignore the (status, created_at)
index of patch 20260204, i.e. the table scan the backend's own sweep did.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
import time
from collections.abc import Callable
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


def ignore_index(sql: str) -> str:
    return sql.replace(FROM_ORDERS, f"{FROM_ORDERS} IGNORE INDEX (`{INDEX}`)", 1)


def _ignore_index_wrapper(execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
    """connection.execute_wrapper: the sweep's SELECTs on trade_orders without the patch's index."""
    if sql.lstrip().upper().startswith("SELECT") and FROM_ORDERS in sql:
        sql = ignore_index(sql)
    return execute(sql, params, many, context)


def _sweep_timed(*, clock: dt.datetime, baseline: bool) -> float:
    connection = connections[trading_alias()]
    started = time.perf_counter()
    if baseline:
        with connection.execute_wrapper(_ignore_index_wrapper):
            result = sweep_run(now=clock, actor=ACTOR_COMMAND)
    else:
        result = sweep_run(now=clock, actor=ACTOR_COMMAND)
    elapsed = time.perf_counter() - started
    if result.scanned:
        raise RuntimeError(MSG_NOT_IDLE.format(count=result.scanned))
    return elapsed


def idle_sweep_measure(*, clock: dt.datetime, runs: int) -> dict[str, Any]:
    connection = connections[trading_alias()]
    sweep_run(now=clock, actor=ACTOR_COMMAND)  # warm: the exchange calendar, the connection
    with CaptureQueriesContext(connection) as ours:
        sweep_run(now=clock, actor=ACTOR_COMMAND)
    with CaptureQueriesContext(connection) as theirs, connection.execute_wrapper(_ignore_index_wrapper):
        sweep_run(now=clock, actor=ACTOR_COMMAND)
    with CaptureQueriesContext(connection) as cron:
        sweep_run_recorded(now=clock, actor=ACTOR_COMMAND, exclusive=True, check_schema=True)
        heartbeat_prune(now=clock)
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for i in range(runs):
        for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
            times[side].append(_sweep_timed(clock=clock, baseline=side == "baseline"))
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
        "plan": query_plan(candidate),
        "baseline_plan": query_plan(ignore_index(candidate)),
        "query_timing": query_timing(candidate, runs=runs),
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


def query_timing(sql: str, *, runs: int) -> dict[str, Any]:
    """The candidate query alone, with and without the index, alternating."""
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    with connections[trading_alias()].cursor() as cursor:
        for i in range(runs):
            for side in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                text = sql if side == "ours" else ignore_index(sql)
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
