"""The sweep's summary audit row, kept on disk when the database went away mid-sweep.

The per-order audit rows commit with their orders, so nothing about any order is lost
with the connection; only the sweep's own `auto_recovery.sweep` row could not be written.
It is kept as a JSON file in AUTO_RECOVER_LOCK_DIR/audit_spool/ and written, with its
original time, by the next run on the same host (runs.sweep_run_recorded). Nothing in
the spool ever stops a run (audit_spool_flush).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, transaction

from recovery.db.audit import ACTION_SWEEP, AuditEntry, audit_entries_write, sweep_detail_bounded
from recovery.db.errors import ErrorKind, error_kind, error_text
from recovery.db.routers import trading_alias

logger = logging.getLogger("recovery.sweep")
SPOOL_FOLDER = "audit_spool"
REFUSED_FOLDER = "refused"  # rows that will never be written, kept for a person to look at
MSG_REFUSED = "kept audit row %s moved aside, %s: %s (the next runs go on without it)"
MSG_NOT_MOVED = "kept audit row %s %s, and could not be moved aside: %s"
MSG_FLUSH_STOPPED = "kept audit rows not written yet (%s and after stay for the next run): %s"
MSG_NOT_REMOVED = "kept audit row %s was written but its file could not be removed: %s"
MSG_SPOOL_UNREADABLE = "the audit spool %s cannot be read: %s"


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

    Never stops a run: a row the database refuses for any reason but a lost connection
    (too big for max_allowed_packet, a value it rejects) and a file that cannot be read
    are moved to audit_spool/refused/ with an error line naming the file, and the flush
    goes on; a sweep row kept before the row was bounded is cut to its bound first. A lost
    connection (or a conflict) stops the flush, the files stay for the run after, and the
    run goes on to find out for itself. A spool folder that cannot be read or changed is
    an error line, never an exception. Returns the rows written.
    """
    folder = spool_dir()
    try:
        paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    except OSError as exc:
        logger.error(MSG_SPOOL_UNREADABLE, folder, exc)
        return 0
    written = 0
    for path in paths:
        try:
            entry, now = _spooled(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _refused(path, f"unreadable: {exc}")
            continue
        try:
            with transaction.atomic(using=trading_alias()):
                audit_entries_write([entry], now=now)
        except DatabaseError as exc:
            if error_kind(exc) is not ErrorKind.OTHER:
                logger.warning(MSG_FLUSH_STOPPED, path, error_text(exc))
                return written
            _refused(path, f"refused by the database: {error_text(exc)}")
            continue
        written += 1
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            # Written, but the file stays: the next flush would write it again. Say so loudly.
            logger.error(MSG_NOT_REMOVED, path, exc)
    return written


def _spooled(path: Path) -> tuple[AuditEntry, dt.datetime]:
    record = json.loads(path.read_text())
    detail = record["detail"]
    if record["action"] == ACTION_SWEEP and isinstance(detail, dict):
        detail = sweep_detail_bounded(detail)  # a row kept before the bound, or simply huge
    entry = AuditEntry(
        record["actor"], record["action"], record["resource_type"], record["resource_id"], detail
    )
    now = dt.datetime.fromisoformat(record["now"])
    return entry, now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)


def _refused(path: Path, why: str) -> None:
    """Move a row that will never be written out of the way of every later run."""
    target = path.parent / REFUSED_FOLDER / path.name
    try:
        target.parent.mkdir(exist_ok=True)
        os.replace(path, target)
    except OSError as exc:
        logger.error(MSG_NOT_MOVED, path, why, exc)
        return
    logger.error(MSG_REFUSED, path.name, why, target)
