"""The one writer of audit_logs rows, and the action names the backend reads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recovery.models import AuditLog

ACTION_CANCEL = "trade_order.auto_recovery.cancel"
ACTION_REPLACE = "trade_order.auto_recovery.replace"
ACTION_SWEEP = "auto_recovery.sweep"
ACTION_SETTINGS_UPDATE = "trade_settings.auto_recovery.update"
RESOURCE_ORDER = "trade_order"
RESOURCE_SWEEP = "auto_recovery"
RESOURCE_SETTINGS = "trade_settings"
ACTOR_COMMAND = "auto_recover"
ACTOR_MAX_LENGTH = 64


def admin_actor(username: str) -> str:
    return f"admin:{username}"[:ACTOR_MAX_LENGTH]


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    action: str
    resource_type: str
    resource_id: int | None
    detail: dict[str, Any]


def audit_entries_write(entries: Sequence[AuditEntry], *, now: dt.datetime) -> list[AuditLog]:
    """Insert the rows in one statement; the caller's transaction decides their fate.

    A single row comes back with its id on every engine; several rows only where the
    engine returns ids from a bulk insert (MariaDB, SQLite, not MySQL 8).
    """
    rows = [
        AuditLog(
            actor=entry.actor[:ACTOR_MAX_LENGTH],
            action=entry.action,
            resource_type=entry.resource_type,
            resource_id=entry.resource_id,
            detail=entry.detail,
            created_at=now,
        )
        for entry in entries
    ]
    if len(rows) == 1:
        rows[0].save(force_insert=True)
        return rows
    return AuditLog.objects.bulk_create(rows)
