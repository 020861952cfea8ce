"""Bench data, generated inside the server with INSERT ... SELECT over a numbers table.

History: `orders` trade_orders over ~2 years (mostly FILLED/CANCELED with broker ids, some
REJECTED/SKIPPED), a few hundred recent NEW orders that are not stale yet, `audit` audit_logs
rows with the backend's action mix. Pseudo-random but deterministic: CRC32 of the row number.
Every order of the data belongs to a run, so none stands in the backend's direct-order loop
queue (rule 10b); the replacements the sweeps write do, until backend_loop_stand_in sends them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.db import connections

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SETTINGS_UPDATE, ACTION_SWEEP
from recovery.db.routers import trading_alias
from recovery.gates.guard import trade_date_for
from recovery.selectors import sender_queue_count
from recovery.sweep.decisions import COMMAND_TTL_SECONDS
from recovery.sweep.placement import QUEUE_AHEAD_MAX

HISTORY_DAYS = 730
HISTORY_GAP = dt.timedelta(hours=1)  # the newest historical order, before the clock
ORDERS_PER_RUN = 200
PROJECTS = 20
RECENT_NEW = 300  # NEW, younger than the 45 s timeout: never candidates
RECENT_SUBMITTED = 50
# The newest stale order's age: past the 45 s timeout and its pending submit command's life
# (rule 5: younger, the bridge may still run it, and it is submit_in_flight).
STALE_AGE_SECONDS = COMMAND_TTL_SECONDS + 15
AUDIT_CHUNK = 500_000  # rows per INSERT ... SELECT (keeps each transaction's undo small)
SYMBOLS = (
    "AAPL MSFT NVDA AMZN GOOGL META TSLA BRK.B JPM V UNH XOM JNJ PG MA "
    "HD CVX AVGO LLY MRK PEP KO COST WMT BAC ADBE CRM NFLX AMD SPY"
).split()
# A batch is at most what one sweep may re-place (rule 10b): fewer than QUEUE_AHEAD_MAX rows
# may stand ahead of a replacement in the backend's loop queue, and each one written joins it.
BATCH_MAX = QUEUE_AHEAD_MAX
SETTINGS = {
    "enabled": True,
    "new_timeout_seconds": 45,
    "max_auto_retries": 1,
    "max_price_deviation_pct": 1.5,
    "allow_replace_outside_rth": False,
    # One sweep may re-place the whole stale batch, and the rolling hour allows that one batch
    # (recovery_run gives each run an empty hour). No higher: a sweep counts its hour from the
    # newest max_replacements_per_hour replace rows of the trail (3.6 ms at 1000, 0.7 ms at
    # 150 on the full-size trail), a cost of the setting (default 60) that the bench's old
    # 1,000-order batches needed and a batch of at most 150 (rule 10b) does not.
    "max_replacements_per_sweep": BATCH_MAX,
    "max_replacements_per_hour": BATCH_MAX,
    "blackout_windows": [],
    "unfilled_timeout_seconds": 300,  # a backend key this project keeps but does not read
    # The batches are orders of finished runs (rule 3b). Without this they are cancelled
    # without replacement (rule 7c); the bench's runs have no decision snapshot, so the
    # backend's partial resume never sends what they left, and re-placing them is safe.
    "replace_run_orders": True,
}
IB_MODE = "paper"  # ib_settings.mode: the backend's loop sends only orders of this mode (rule 10b)


def _sql(moment: dt.datetime) -> str:
    """A naive-UTC DATETIME literal (the backend's convention)."""
    return moment.astimezone(dt.UTC).strftime("'%Y-%m-%d %H:%M:%S'")


def _symbol(expr: str) -> str:
    names = ", ".join(f"'{s}'" for s in SYMBOLS)
    return f"ELT(1 + ({expr}) % {len(SYMBOLS)}, {names})"


def _execute(sql: str) -> int:
    # No params: `%` in DATE_FORMAT stays literal, and every value here is generated.
    with connections[trading_alias()].cursor() as cursor:
        cursor.execute(sql)
        return cursor.rowcount


def numbers_build(*, upto: int) -> None:
    """bench_seq(n) = 1..upto, by doubling."""
    _execute("DROP TABLE IF EXISTS bench_seq")
    _execute("CREATE TABLE bench_seq (n INT NOT NULL PRIMARY KEY) ENGINE=InnoDB")
    _execute("INSERT INTO bench_seq VALUES (1)")
    have = 1
    while have < upto:
        _execute(f"INSERT INTO bench_seq SELECT n + {have} FROM bench_seq WHERE n + {have} <= {upto}")
        have = min(have * 2, upto)


def numbers_drop() -> None:
    _execute("DROP TABLE IF EXISTS bench_seq")


def history_window(clock: dt.datetime) -> tuple[dt.datetime, int]:
    start = clock - dt.timedelta(days=HISTORY_DAYS)
    return start, int((clock - HISTORY_GAP - start).total_seconds())


def runs_insert(*, orders: int, clock: dt.datetime) -> int:
    """The history's runs, all finished ('done'): their orders are the sweep's (rule 3b)."""
    runs = max(1, -(-orders // ORDERS_PER_RUN))
    start, span = history_window(clock)
    created = f"TIMESTAMPADD(SECOND, FLOOR((n - 1) * {span} / {runs}), {_sql(start)})"
    _execute(
        "INSERT INTO trade_runs (id, project_id, mode, status, params, created_at, started_at, "
        "ended_at, updated_at) "
        f"SELECT n, 1 + n % {PROJECTS}, IF(n % 5 = 0, 'live', 'paper'), 'done', "
        "JSON_OBJECT('strategy', ELT(1 + n % 4, 'momentum_v3', 'mean_reversion', 'pairs_spy_qqq', "
        "'rebalance'), 'capital', 100000 + (n % 7) * 25000), "
        f"{created}, {created}, TIMESTAMPADD(HOUR, 6, {created}), TIMESTAMPADD(HOUR, 6, {created}) "
        f"FROM bench_seq WHERE n <= {runs}"
    )
    return runs


def _order_params(*, pending: str, requested: str) -> str:
    return (
        f"JSON_OBJECT('project_id', 1 + run_id % {PROJECTS}, 'mode', IF(run_id % 5 = 0, 'live', 'paper'), "
        "'strategy', ELT(1 + run_id % 4, 'momentum_v3', 'mean_reversion', 'pairs_spy_qqq', 'rebalance'), "
        "'signal_id', n, 'source', 'lean', 'submit_command', JSON_OBJECT('pending', "
        f"{pending}, 'requested_at', DATE_FORMAT({requested}, '%Y-%m-%dT%H:%i:%sZ'), "
        "'command_id', LEFT(MD5(n), 16)))"
    )


ORDER_COLUMNS = (
    "run_id, client_order_id, symbol, side, quantity, order_type, limit_price, status, "
    "filled_quantity, avg_fill_price, ib_order_id, ib_perm_id, last_status_ts, rejected_reason, "
    "params, created_at, updated_at"
)
REJECTIONS = (
    "'Order rejected - reason: insufficient buying power', "
    "'Order rejected - reason: the contract is not available for short sale', "
    "'No security definition has been found for the request'"
)


def history_insert(*, orders: int, clock: dt.datetime) -> None:
    start, span = history_window(clock)
    filled_part = "(status = 'CANCELED' AND h1 % 10 = 0)"
    _execute(
        f"INSERT INTO trade_orders ({ORDER_COLUMNS}) "
        "SELECT run_id, CONCAT('run', run_id, '-', symbol, '-', LPAD(n, 9, '0')), symbol, side, "
        "quantity, order_type, IF(order_type IN ('LMT', 'PEG_MID'), price, NULL), status, "
        f"CASE WHEN status = 'FILLED' THEN quantity WHEN {filled_part} THEN FLOOR(quantity / 2) "
        "ELSE 0 END, "
        f"IF(status = 'FILLED' OR {filled_part}, price, NULL), "
        "IF(acked, 100000 + n, NULL), IF(acked, 1500000000 + n, NULL), "
        "TIMESTAMPADD(SECOND, 1 + h3 % 30, created_at), "
        f"IF(status = 'REJECTED', ELT(1 + h1 % 3, {REJECTIONS}), NULL), "
        f"{_order_params(pending='false', requested='created_at')}, "
        "created_at, TIMESTAMPADD(SECOND, 1 + h3 % 30, created_at) "
        "FROM (SELECT n, h1, h3, "
        f"1 + (n - 1) DIV {ORDERS_PER_RUN} AS run_id, "
        f"TIMESTAMPADD(SECOND, FLOOR((n - 1) * {span} / {orders}), {_sql(start)}) AS created_at, "
        f"{_symbol('h2')} AS symbol, "
        f"IF((h2 DIV {len(SYMBOLS)}) % 2 = 0, 'BUY', 'SELL') AS side, "
        "1 + h3 % 500 AS quantity, "
        "CASE WHEN (h3 DIV 500) % 100 < 55 THEN 'MKT' WHEN (h3 DIV 500) % 100 < 80 THEN 'LMT' "
        "WHEN (h3 DIV 500) % 100 < 95 THEN 'ADAPTIVE_LMT' ELSE 'PEG_MID' END AS order_type, "
        "ROUND(20 + ((h2 DIV 60) % 48000) / 100, 2) AS price, "
        "CASE WHEN h1 % 100 < 68 THEN 'FILLED' WHEN h1 % 100 < 90 THEN 'CANCELED' "
        "WHEN h1 % 100 < 96 THEN 'REJECTED' ELSE 'SKIPPED' END AS status, "
        "(h1 % 100 < 90 OR (h1 % 100 < 96 AND h1 % 2 = 0)) AS acked "
        "FROM (SELECT n, CRC32(CONCAT('a', n)) AS h1, CRC32(CONCAT('b', n)) AS h2, "
        f"CRC32(CONCAT('c', n)) AS h3 FROM bench_seq WHERE n <= {orders}) AS seeds) AS g "
        "ORDER BY n"
    )


def recent_insert(*, runs: int, clock: dt.datetime) -> None:
    """Live traffic: NEW orders younger than the timeout (submit in flight), a few SUBMITTED."""
    total = RECENT_NEW + RECENT_SUBMITTED
    params = _order_params(pending="status = 'NEW'", requested="created_at")
    _execute(
        f"INSERT INTO trade_orders ({ORDER_COLUMNS}) "
        "SELECT run_id, CONCAT('live-', run_id, '-', symbol, '-', LPAD(n, 6, '0')), symbol, "
        "IF(n % 2 = 0, 'BUY', 'SELL'), 1 + n % 300, IF(n % 3 = 0, 'LMT', 'MKT'), "
        "IF(n % 3 = 0, 100 + n % 50, NULL), status, 0, NULL, "
        "IF(status = 'SUBMITTED', 900000 + n, NULL), IF(status = 'SUBMITTED', 1900000000 + n, NULL), "
        "IF(status = 'SUBMITTED', created_at, NULL), NULL, "
        f"{params}, created_at, created_at "
        f"FROM (SELECT n, 1 + n % {runs} AS run_id, {_symbol('n')} AS symbol, "
        f"IF(n <= {RECENT_NEW}, 'NEW', 'SUBMITTED') AS status, "
        f"TIMESTAMPADD(SECOND, -IF(n <= {RECENT_NEW}, n % 40, 60 + n), {_sql(clock)}) AS created_at "
        f"FROM bench_seq WHERE n <= {total}) AS g ORDER BY created_at, n"
    )


def stale_batch_insert(*, label: str, count: int, runs: int, clock: dt.datetime) -> str:
    """`count` stale, replaceable MKT orders (the executor lost their submit); their id prefix.

    Spread over the paper runs only (a run's mode is 'live' when its id is a multiple of 5):
    the backend's loop sends only orders of ib_settings.mode, so a live order's replacement
    would be held (rule 10b). The p-th paper run (from 0) is run p + p DIV 4 + 1.
    """
    prefix = f"stale-{label}-"
    paper = max(1, runs - runs // 5)
    _execute(
        f"INSERT INTO trade_orders ({ORDER_COLUMNS}) "
        f"SELECT run_id, CONCAT('{prefix}', LPAD(n, 6, '0')), symbol, IF(n % 2 = 0, 'BUY', 'SELL'), "
        "1 + n % 300, 'MKT', NULL, 'NEW', 0, NULL, NULL, NULL, NULL, NULL, "
        f"{_order_params(pending='true', requested='created_at')}, created_at, created_at "
        f"FROM (SELECT n, 1 + n % {paper} + (n % {paper}) DIV 4 AS run_id, {_symbol('n * 7')} AS symbol, "
        f"TIMESTAMPADD(SECOND, -({STALE_AGE_SECONDS} + {count} - n), {_sql(clock)}) AS created_at "
        f"FROM bench_seq WHERE n <= {count}) AS g ORDER BY n"
    )
    return prefix


def replacements_age(*, clock: dt.datetime) -> None:
    """Move the replacement audit rows of the last hour two hours back: the next batch's run
    finds its rolling hour (max_replacements_per_hour) empty, as a first recovery after a
    quiet hour does. Every run recovers at the same clock, so without this the second would
    find the hour used up and re-place nothing. The rows stay: the trail grows as it would.
    """
    _execute(
        "UPDATE audit_logs SET created_at = TIMESTAMPADD(HOUR, -2, created_at) "
        f"WHERE action = '{ACTION_REPLACE}' AND created_at > {_sql(clock - dt.timedelta(hours=1))}"
    )


# The backend's direct-order loop, as far as the bench needs it: every replacement waiting
# for it is sent (SUBMITTED, its retry no longer pending) and leaves the loop's queue.
BACKEND_SENDS = (
    "UPDATE trade_orders SET status = 'SUBMITTED', "
    "params = JSON_SET(params, '$.direct_retry.pending', false) WHERE run_id IS NULL "
    "AND status = 'NEW' AND JSON_EXTRACT(params, '$.direct_retry.pending') = 'true'"
)
MSG_QUEUE_NOT_EMPTY = (
    "{left} rows with no run are still NEW or REJECTED after the stand-in for the backend's loop: "
    "they would stand ahead of the next batch's replacements (rule 10b); the bench data is wrong"
)


def backend_loop_stand_in() -> int:
    """Stands in for the backend's direct-order loop between two recovery runs: sends (marks
    SUBMITTED) the replacements the last run left waiting for it, as the backend does within
    seconds. Without it they fill the loop's queue, and after about 150 of them every further
    replacement is held (rule 10b, `backend_sender_unavailable`). Returns how many it sent;
    the queue must be empty afterwards, or the next batch could not be recovered whole.
    """
    sent = _execute(BACKEND_SENDS)
    left = sender_queue_count()
    if left:
        raise RuntimeError(MSG_QUEUE_NOT_EMPTY.format(left=left))
    return sent


def _audit_action(r: str) -> str:
    ladder = (
        (3800, "trade_order.create"),
        (6800, "trade_order.submit"),
        (9100, "trade_order.status"),
        (9400, "trade_run.start"),
        (9700, "trade_run.finish"),
        (9900, "risk.check"),
        (9950, "ib.reconnect"),
        (9970, ACTION_CANCEL),
        (9985, ACTION_REPLACE),
        (9995, ACTION_SWEEP),
        (9998, "trade_settings.update"),
    )
    steps = " ".join(f"WHEN {r} < {limit} THEN '{action}'" for limit, action in ladder)
    return f"CASE {steps} ELSE '{ACTION_SETTINGS_UPDATE}' END"


AUDIT_DETAIL = f"""CASE
  WHEN action LIKE 'trade_order.%' AND action NOT LIKE '%auto_recovery%' THEN JSON_OBJECT(
    'client_order_id', CONCAT('ord-', oid), 'symbol', {_symbol("h")}, 'status',
    ELT(1 + h % 4, 'NEW', 'SUBMITTED', 'FILLED', 'CANCELED'), 'quantity', 1 + h % 500,
    'ib_order_id', 100000 + oid)
  WHEN action LIKE 'trade_run.%' THEN JSON_OBJECT('run_id', rid, 'project_id', 1 + rid % {PROJECTS},
    'mode', IF(rid % 5 = 0, 'live', 'paper'), 'orders', 1 + h % 200)
  WHEN action = 'risk.check' THEN JSON_OBJECT('run_id', rid, 'rule', 'max_position_pct',
    'value', (h % 1000) / 10000, 'limit', 0.1, 'passed', JSON_EXTRACT('true', '$'))
  WHEN action = 'ib.reconnect' THEN JSON_OBJECT('host', '127.0.0.1', 'port', 4002,
    'attempt', 1 + h % 5, 'error', 'Connectivity between IB and TWS has been lost')
  WHEN action = '{ACTION_CANCEL}' THEN JSON_OBJECT('sweep_id', MD5(m), 'id', oid,
    'client_order_id', CONCAT('ord-', oid), 'decision', 'replace', 'reason', 'replaced',
    'age_seconds', 45 + h % 600, 'attempt', 0, 'quote', NULL, 'deviation_pct', NULL, 'detail', NULL,
    'replacement_id', oid + 1, 'replacement_client_order_id', CONCAT('ord-', oid, '-r1'))
  WHEN action = '{ACTION_REPLACE}' THEN JSON_OBJECT('sweep_id', MD5(m), 'origin_order_id', oid - 1,
    'origin_client_order_id', CONCAT('ord-', oid - 1), 'client_order_id', CONCAT('ord-', oid - 1, '-r1'),
    'attempt', 1, 'root_order_id', oid - 1, 'root_client_order_id', CONCAT('ord-', oid - 1))
  WHEN action = '{ACTION_SWEEP}' THEN JSON_OBJECT('sweep_id', MD5(m), 'actor', 'auto_recover',
    'dry_run', JSON_EXTRACT('false', '$'), 'scanned', 1, 'cancelled', 1, 'replaced', 1, 'skipped', 0,
    'failed', 0, 'circuit_open', JSON_EXTRACT('false', '$'), 'reasons', JSON_OBJECT('replaced', 1),
    'orders', JSON_ARRAY(JSON_OBJECT('id', oid, 'client_order_id', CONCAT('ord-', oid),
    'decision', 'replace', 'reason', 'replaced', 'replacement_id', oid + 1)))
  ELSE JSON_OBJECT('changed_keys', JSON_ARRAY('new_timeout_seconds'),
    'before', JSON_OBJECT('new_timeout_seconds', 60), 'after', JSON_OBJECT('new_timeout_seconds', 45))
END"""


def audit_insert(*, total: int, orders: int, clock: dt.datetime) -> None:
    start, span = history_window(clock)
    recovery = f"('{ACTION_CANCEL}', '{ACTION_REPLACE}', '{ACTION_SWEEP}')"
    settings_actions = f"('trade_settings.update', '{ACTION_SETTINGS_UPDATE}')"
    for offset in range(0, total, AUDIT_CHUNK):
        chunk = min(AUDIT_CHUNK, total - offset)
        _execute(
            "INSERT INTO audit_logs (actor, action, resource_type, resource_id, detail, created_at) "
            f"SELECT CASE WHEN action IN {recovery} THEN IF(h % 10 = 0, 'admin:alice', 'auto_recover') "
            f"WHEN action IN {settings_actions} THEN 'admin:alice' ELSE 'system' END, action, "
            "CASE WHEN action LIKE 'trade_order.%' THEN 'trade_order' WHEN action LIKE 'trade_run.%' "
            "OR action = 'risk.check' THEN 'trade_run' WHEN action = 'ib.reconnect' THEN 'ib_settings' "
            f"WHEN action = '{ACTION_SWEEP}' THEN 'auto_recovery' ELSE 'trade_settings' END, "
            "CASE WHEN action LIKE 'trade_order.%' THEN oid WHEN action LIKE 'trade_run.%' "
            f"OR action = 'risk.check' THEN rid WHEN action = '{ACTION_SWEEP}' THEN NULL ELSE 1 END, "
            f"{AUDIT_DETAIL}, created_at "
            f"FROM (SELECT m, h, oid, 1 + (oid - 1) DIV {ORDERS_PER_RUN} AS rid, created_at, "
            f"{_audit_action('h % 10000')} AS action "
            f"FROM (SELECT n + {offset} AS m, CRC32(CONCAT('x', n + {offset})) AS h, "
            f"1 + FLOOR((n + {offset} - 1) * {orders} / {total}) AS oid, "
            f"TIMESTAMPADD(SECOND, FLOOR((n + {offset} - 1) * {span} / {total}), {_sql(start)}) "
            f"AS created_at FROM bench_seq WHERE n <= {chunk}) AS seeds) AS g ORDER BY m"
        )


def settings_insert(*, clock: dt.datetime, gateway_port: int) -> None:
    """trade_settings with the bench's auto_recovery, today's guard rows active, and ib_settings
    as the backend's sender needs it to re-place (rules 2, 10b): api_mode 'ib', mode paper, at
    `gateway_port` (the bench process's loopback stand-in for the gateway, which answers the
    sweep's TCP probe)."""
    auto_recovery = json.dumps(SETTINGS).replace("'", "''")
    _execute(
        "INSERT INTO trade_settings (risk_defaults, execution_data_source, auto_recovery, created_at, "
        f"updated_at) VALUES ('{{\"max_position_pct\": 0.1}}', 'ib', '{auto_recovery}', "
        f"{_sql(clock)}, {_sql(clock)})"
    )
    _execute(
        "INSERT INTO ib_settings (host, port, api_mode, mode, created_at, updated_at) "
        f"VALUES ('127.0.0.1', {int(gateway_port)}, 'ib', '{IB_MODE}', {_sql(clock)}, {_sql(clock)})"
    )
    trade_date = trade_date_for(clock).isoformat()
    _execute(
        "INSERT INTO trade_guard_state (project_id, trade_date, mode, status, created_at, updated_at) "
        f"SELECT 1 + (n - 1) DIV 2, '{trade_date}', IF(n % 2 = 0, 'live', 'paper'), 'active', "
        f"{_sql(clock)}, {_sql(clock)} FROM bench_seq WHERE n <= {PROJECTS * 2}"
    )


def tables_analyze() -> None:
    for table in ("trade_orders", "audit_logs", "trade_runs"):
        with connections[trading_alias()].cursor() as cursor:
            cursor.execute(f"ANALYZE TABLE `{table}`")
            cursor.fetchall()


def bridge_write(*, root: Path, clock: dt.datetime) -> None:
    """Fresh quotes for every symbol and the open orders of the SUBMITTED rows, 5 s old."""
    at = (clock - dt.timedelta(seconds=5)).astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

    def envelope(items: list[dict[str, Any]]) -> str:
        return json.dumps({"items": items, "stale": False, "updated_at": at})

    quotes = [
        {"symbol": s, "data": {"last": 100.0 + i, "bid": 99.9 + i, "ask": 100.1 + i}}
        for i, s in enumerate(SYMBOLS)
    ]
    (root / "quotes.json").write_text(envelope(quotes))
    (root / "open_orders.json").write_text(
        envelope([{"tag": f"live-tag-{i}"} for i in range(RECENT_SUBMITTED)])
    )
