"""The sweep's summary audit row, kept on disk when the database went away mid-sweep.

The per-order audit rows commit with their orders, so nothing about any order is lost
with the connection; only the sweep's own `auto_recovery.sweep` row could not be written.
It is kept as a JSON file in AUTO_RECOVER_LOCK_DIR/audit_spool/ and written, with its
original time, by the next run on the same host (runs.sweep_run_recorded).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

from django.conf import settings
from django.db import transaction

from recovery.db.audit import AuditEntry, audit_entries_write
from recovery.db.routers import trading_alias

logger = logging.getLogger("recovery.sweep")
SPOOL_FOLDER = "audit_spool"


def spool_dir() -> Path:
    return Path(settings.AUTO_RECOVER_LOCK_DIR) / SPOOL_FOLDER


def audit_spool_put(entry: AuditEntry, *, now: dt.datetime) -> Path | None:
    """Keep the row for the next run; None (and an error line) when even that fails."""
    folder = spool_dir()
    name = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{entry.detail.get('sweep_id', 'sweep')}.json"
    record = {"now": now.isoformat(), "actor": entry.actor, "action": entry.action,
              "resource_type": entry.resource_type, "resource_id": entry.resource_id,
              "detail": entry.detail}  # fmt: skip
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{name}.tmp"
        temporary.write_text(json.dumps(record, allow_nan=False))
        os.replace(temporary, folder / name)
    except OSError as exc:
        logger.error("could not keep the sweep's audit row for the next run (%s): %s", exc, entry.detail)
        return None
    logger.warning("the sweep's audit row is kept in %s; the next run writes it", folder / name)
    return folder / name


def audit_spool_flush() -> int:
    """Write every kept row (oldest first), each in its own transaction; delete its file.

    A database error stops the flush (the files stay for the run after); call it where a
    database error is handled anyway.
    """
    folder = spool_dir()
    if not folder.is_dir():
        return 0
    written = 0
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            entry = AuditEntry(
                record["actor"],
                record["action"],
                record["resource_type"],
                record["resource_id"],
                record["detail"],
            )
            now = dt.datetime.fromisoformat(record["now"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("unreadable kept audit row %s left in place: %s", path, exc)
            continue
        with transaction.atomic(using=trading_alias()):
            audit_entries_write([entry], now=now)
        path.unlink()
        written += 1
    return written
