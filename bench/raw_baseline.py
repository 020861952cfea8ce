"""The lower bound for (b): the same writes by hand, through the bare MySQLdb driver.

One transaction per order: SELECT ... FOR UPDATE SKIP LOCKED, the conditional cancel, the
replacement INSERT, both audit rows in one INSERT, COMMIT. No ORM, no decision table, no
gates: what any correct recovery must at least cost on this server. The JSON written is
the same as the sweep's (recovery.sweep.chain builds both), so the bytes match.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import MySQLdb

from recovery.db.audit import ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP, RESOURCE_ORDER, RESOURCE_SWEEP
from recovery.sweep.chain import cancelled_params, chain_root, replacement_client_order_id, replacement_params
from recovery.sweep.placement import placement_params

ACTOR = "bench:raw"
TIMEOUT_SECONDS = 45
STILL_NEW = "status = 'NEW' AND ib_order_id IS NULL AND ib_perm_id IS NULL AND filled_quantity = 0"
CANDIDATES = (
    "SELECT id FROM trade_orders WHERE " + STILL_NEW + " AND created_at <= %s "
    "AND NOT COALESCE(JSON_VALUE(params, '$.intent_only') = 'true', FALSE) "
    "ORDER BY created_at, id LIMIT %s"
)
LOCK = (
    "SELECT id, run_id, client_order_id, symbol, side, quantity, order_type, limit_price, params, "
    "created_at FROM trade_orders WHERE id = %s AND " + STILL_NEW + " FOR UPDATE SKIP LOCKED"
)
CANCEL = (
    "UPDATE trade_orders SET status = 'CANCELED', params = %s, updated_at = %s WHERE id = %s AND " + STILL_NEW
)
REPLACE = (
    "INSERT INTO trade_orders (run_id, client_order_id, symbol, side, quantity, order_type, "
    "limit_price, status, filled_quantity, params, created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, 'NEW', 0, %s, %s, %s)"
)
AUDIT = (
    "INSERT INTO audit_logs (actor, action, resource_type, resource_id, detail, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s)"
)
SWEEP_AUDIT = (
    "INSERT INTO audit_logs (actor, action, resource_type, resource_id, detail, created_at) "
    "VALUES (%s, %s, %s, NULL, %s, %s)"
)


@dataclass
class RawRun:
    recovered: int = 0
    skipped: int = 0
    statements: int = 0  # statements this code sent, COMMIT included
    per_sweep: int = 0  # of those, the candidate list and the sweep's audit row (and their COMMITs)


def raw_recover(connection: MySQLdb.Connection, *, now: dt.datetime, limit: int) -> RawRun:
    """Recover every stale NEW order (at most `limit`), one transaction each."""
    naive = now.astimezone(dt.UTC).replace(tzinfo=None)
    sweep_id = uuid.uuid4().hex
    run = RawRun()
    cursor = connection.cursor()
    cursor.execute(CANDIDATES, (naive - dt.timedelta(seconds=TIMEOUT_SECONDS), limit))
    ids = [row[0] for row in cursor.fetchall()]
    connection.commit()
    run.statements += 2
    run.per_sweep += 2
    outcomes = []
    for order_id in ids:
        outcome = _order_recover(cursor, order_id=order_id, now=now, naive=naive, sweep_id=sweep_id, run=run)
        connection.commit()
        run.statements += 1
        if outcome is None:
            run.skipped += 1
        else:
            run.recovered += 1
            outcomes.append(outcome)
    cursor.execute(
        SWEEP_AUDIT, (ACTOR, ACTION_SWEEP, RESOURCE_SWEEP, _sweep_detail(sweep_id, outcomes), naive)
    )
    connection.commit()
    run.statements += 2
    run.per_sweep += 2
    cursor.close()
    return run


def _order_recover(
    cursor: Any, *, order_id: int, now: dt.datetime, naive: dt.datetime, sweep_id: str, run: RawRun
) -> dict[str, Any] | None:
    cursor.execute(LOCK, (order_id,))
    run.statements += 1
    row = cursor.fetchone()
    if row is None:
        return None
    _, run_id, client_id, symbol, side, quantity, order_type, limit_price, raw_params, created = row
    params = json.loads(raw_params) if raw_params else {}
    cancelled = cancelled_params(
        original_params=params, action="replace", reason="replaced", now=now, sweep_id=sweep_id
    )
    cursor.execute(CANCEL, (json.dumps(cancelled), naive, order_id))
    run.statements += 1
    if cursor.rowcount != 1:
        return None
    _, root_client = chain_root(order_id=order_id, client_order_id=client_id, params=params)
    new_client = replacement_client_order_id(root_client_order_id=root_client, attempt=1)
    new_params = replacement_params(
        original_params=params,
        origin_order_id=order_id,
        origin_client_order_id=client_id,
        attempt=1,
        now=now,
        sweep_id=sweep_id,
        placement=placement_params(mode="paper", project_id=None, run_id=None, run=None),
    )
    cursor.execute(
        REPLACE,
        (
            None,  # handed to the backend's direct-order loop, as the sweep writes it
            new_client,
            symbol,
            side,
            quantity,
            order_type,
            limit_price,
            json.dumps(new_params),
            naive,
            naive,
        ),
    )
    new_id = cursor.lastrowid
    outcome = {
        "id": order_id,
        "client_order_id": client_id,
        "decision": "replace",
        "reason": "replaced",
        "age_seconds": round((naive - created).total_seconds(), 3),
        "attempt": 0,
        "quote": None,
        "deviation_pct": None,
        "detail": None,
        "replacement_id": new_id,
        "replacement_client_order_id": new_client,
    }
    replace_detail = {
        "sweep_id": sweep_id,
        "origin_order_id": order_id,
        "origin_client_order_id": client_id,
        "client_order_id": new_client,
        "attempt": 1,
        "root_order_id": new_params["auto_recovery"]["root_order_id"],
        "root_client_order_id": root_client,
    }
    cursor.execute(
        AUDIT,
        (
            *(
                ACTOR,
                ACTION_CANCEL,
                RESOURCE_ORDER,
                order_id,
                json.dumps({"sweep_id": sweep_id, **outcome}),
                naive,
            ),
            *(ACTOR, ACTION_REPLACE, RESOURCE_ORDER, new_id, json.dumps(replace_detail), naive),
        ),
    )
    run.statements += 2
    return outcome


def _sweep_detail(sweep_id: str, outcomes: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "sweep_id": sweep_id,
            "actor": ACTOR,
            "scanned": len(outcomes),
            "cancelled": len(outcomes),
            "replaced": len(outcomes),
            "orders": outcomes,
        }
    )
