"""Each order's decision history (OrderDecision), written in bulk once per sweep; its pruning.

One upsert statement per chunk of orders: a new (order, decision, reason) gets its row, a
known one gets its last time, sweep and audit row, and one more in `times`; its first
time and sweep stay. MySQL/MariaDB say it with ON DUPLICATE KEY UPDATE, SQLite and
PostgreSQL with ON CONFLICT. Plain SQL because the ORM's bulk_create(update_conflicts=True)
cannot add 1 to a column, and reading the keys first would be a second round trip per
chunk and a race between two hosts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from recovery.db.models import OrderDecision

HISTORY_ALIAS = DEFAULT_DB_ALIAS  # this app's own database, never the trading one
CHUNK = 500  # rows per statement: 13 parameters each, well under every engine's limit
PRUNE_BATCH = 5000
DETAIL_MAX = 500

_COLUMNS = (
    "order_id",
    "client_order_id",
    "decision",
    "reason",
    "detail",
    "first_at",
    "last_at",
    "first_sweep_id",
    "last_sweep_id",
    "first_audit_id",
    "last_audit_id",
    "replacement_id",
    "last_actor",
    "times",
)
# What a sweep that gives a known pair again changes: the rest (first_*) stays.
_UPDATED = (
    "client_order_id",
    "detail",
    "last_at",
    "last_sweep_id",
    "last_audit_id",
    "replacement_id",
    "last_actor",
)


@dataclass(frozen=True)
class DecisionEntry:
    order_id: int
    client_order_id: str
    decision: str
    reason: str
    detail: str = ""
    replacement_id: int | None = None


def _upsert_sql(vendor: str, rows: int) -> str:
    table = OrderDecision._meta.db_table
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"] * rows)
    head = f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {placeholders}"
    if vendor == "mysql":
        sets = ", ".join(f"{c} = VALUES({c})" for c in _UPDATED)
        return f"{head} ON DUPLICATE KEY UPDATE {sets}, times = times + 1"
    sets = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED)
    return f"{head} ON CONFLICT (order_id, decision, reason) DO UPDATE SET {sets}, times = {table}.times + 1"


def decision_history_write(
    entries: Sequence[DecisionEntry],
    *,
    now: dt.datetime,
    sweep_id: str,
    actor: str,
    audit_id: int | None,
) -> int:
    """Record what one sweep decided for each order (`now`: the moment of this write).

    Returns the number of statements it took. Runs in autocommit, outside every order's
    transaction; a DatabaseError is the caller's to log (the history never holds a sweep).
    """
    # One row per pair per sweep: a statement may not touch the same row twice.
    unique = list({(e.order_id, e.decision, e.reason): e for e in entries}.values())
    if not unique:
        return 0
    connection = connections[HISTORY_ALIAS]
    at = connection.ops.adapt_datetimefield_value(now)
    statements = 0
    with connection.cursor() as cursor:
        for start in range(0, len(unique), CHUNK):
            chunk = unique[start : start + CHUNK]
            values: list[Any] = []
            for e in chunk:
                values += [
                    e.order_id,
                    e.client_order_id[:64],
                    e.decision[:16],
                    e.reason[:32],
                    (e.detail or "")[:DETAIL_MAX],
                    at,
                    at,
                    sweep_id[:32],
                    sweep_id[:32],
                    audit_id,
                    audit_id,
                    e.replacement_id,
                    actor[:64],
                    1,
                ]
            cursor.execute(_upsert_sql(connection.vendor, len(chunk)), values)
            statements += 1
    return statements


def decision_history_prune(*, now: dt.datetime) -> int:
    """Delete rows last given before the retention, one indexed batch per call."""
    cutoff = now - dt.timedelta(days=settings.RECOVERY_HISTORY_RETENTION_DAYS)
    rows = OrderDecision.objects.using(HISTORY_ALIAS)
    old = list(rows.filter(last_at__lt=cutoff).order_by("last_at").values_list("id", flat=True)[:PRUNE_BATCH])
    if not old:
        return 0
    deleted, _ = rows.filter(id__in=old).delete()
    return deleted
