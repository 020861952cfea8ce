"""The lower bound for (b): the same writes by hand, through the bare MySQLdb driver.

One transaction per order: SELECT ... FOR UPDATE SKIP LOCKED (with its run's status, as the
sweep re-checks rule 3b under the lock), the conditional cancel, the replacement INSERT, both
audit rows in one INSERT, COMMIT. No ORM, no decision table, no gates (nor the sender check
of rule 10b: the bench empties the backend's loop queue before each batch): what any correct
recovery must at least cost on this server. The replacement is written as the sweep writes
it, a row with no run handed to the backend's direct-order loop, its params built by the same
functions (recovery.sweep.chain, recovery.sweep.placement) from the same facts: the order's
mode and project are its run's (read with the candidates, as the sweep reads its runs once
per sweep), so the bytes match but for ids, times and the sweep id.
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
from recovery.sweep.decisions import TERMINAL_RUN_STATUSES
from recovery.sweep.placement import RunPlacement, placement_params

ACTOR = "bench:raw"
TIMEOUT_SECONDS = 45
STILL_NEW = "status = 'NEW' AND ib_order_id IS NULL AND ib_perm_id IS NULL AND filled_quantity = 0"
# The candidates and what the replacement needs of their runs (project, mode, how the run
# sends its orders), in one statement: the sweep reads its candidates' runs once per sweep.
CANDIDATES = (
    "SELECT o.id, r.project_id, r.mode, JSON_EXTRACT(r.params, '$.allow_outside_rth'), "
    "JSON_EXTRACT(r.params, '$.adaptive_priority') FROM trade_orders o "
    "LEFT JOIN trade_runs r ON r.id = o.run_id WHERE o."
    + STILL_NEW.replace(" AND ", " AND o.")
    + " AND o.created_at <= %s AND NOT COALESCE(JSON_VALUE(o.params, '$.intent_only') = 'true', FALSE) "
    "ORDER BY o.created_at, o.id LIMIT %s"
)
LOCK = (
    "SELECT id, run_id, client_order_id, symbol, side, quantity, order_type, limit_price, params, "
    "created_at, (SELECT r.status FROM trade_runs r WHERE r.id = trade_orders.run_id) "
    "FROM trade_orders WHERE id = %s AND " + STILL_NEW + " FOR UPDATE SKIP LOCKED"
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
    candidates = [(row[0], _RunFacts(*row[1:])) for row in cursor.fetchall()]
    connection.commit()
    run.statements += 2
    run.per_sweep += 2
    outcomes = []
    for order_id, facts in candidates:
        outcome = _order_recover(
            cursor, order_id=order_id, facts=facts, now=now, naive=naive, sweep_id=sweep_id, run=run
        )
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


@dataclass(frozen=True)
class _RunFacts:
    """What the replacement needs of the order's run (all None for a direct order)."""

    project_id: int | None
    mode: str | None
    allow_outside_rth: str | None  # JSON text, as JSON_EXTRACT returns it
    adaptive_priority: str | None

    def placement(self, *, run_id: int | None, params: dict[str, Any]) -> tuple[dict, dict]:
        """placement_params as the sweep calls it (selectors.order_snapshot's mode and project)."""
        project_id, mode = self.project_id, self.mode
        if project_id is None:  # a direct order: its own params say
            raw_project = params.get("project_id")
            project_id = raw_project if type(raw_project) is int else None
            mode = params.get("mode") if isinstance(params.get("mode"), str) else None
        placement = None
        if run_id is not None:
            placement = RunPlacement(
                allow_outside_rth=_json(self.allow_outside_rth),
                adaptive_priority=_json(self.adaptive_priority),
            )
        return placement_params(mode=mode or "paper", project_id=project_id, run_id=run_id, run=placement)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _order_recover(
    cursor: Any,
    *,
    order_id: int,
    facts: _RunFacts,
    now: dt.datetime,
    naive: dt.datetime,
    sweep_id: str,
    run: RawRun,
) -> dict[str, Any] | None:
    cursor.execute(LOCK, (order_id,))
    run.statements += 1
    row = cursor.fetchone()
    if row is None:
        return None
    _, run_id, client_id, symbol, side, quantity, order_type, limit_price, raw_params, created, run_now = row
    if run_id is not None and run_now not in TERMINAL_RUN_STATUSES:
        return None  # the run has not ended: it owns the order (rule 3b); the lock ends at COMMIT
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
        placement=facts.placement(run_id=run_id, params=params),
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
