"""The demo moved to now: every time in its database and its bridge files, by one offset.

`make demo` stamps the scenario at its clock (11:00 New York on a session day); days later
the same orders, runs, audit rows, heartbeats and broker files would read as days old
(health "stale: last run 354188s ago", quotes too old to use). `make admin` (`manage.py
demo --serve`) first moves the demo's whole world forward so that its latest moment is
now: ages, the order of events and what each file says stay as they were, and no sweep
runs. Only the demo's SQLite database and its own bridge folder are touched.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import Max

from recovery.db.models import AuditLog, SweepRun, TradeOrder
from recovery.gates.guard import NEW_YORK
from recovery.selectors import events_stores_clear

# An ISO-8601 date and time, as the backend and the Lean processes write them. Years before
# 2000 are left alone: C#'s default 0001-01-01T00:00:00 means "no time", not a moment.
ISO_MOMENT = re.compile(r"^(?:2\d{3})-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?$")


def demo_latest_moment(*, bridge_root: Path) -> dt.datetime | None:
    """The demo's "now": its latest order write, audit row, heartbeat or bridge snapshot.

    (Not every moment it holds: a submit command's `expires_at` lies ahead of its writes.)
    """
    moments = [
        TradeOrder.objects.aggregate(m=Max("updated_at"))["m"],
        TradeOrder.objects.aggregate(m=Max("created_at"))["m"],
        AuditLog.objects.aggregate(m=Max("created_at"))["m"],
        SweepRun.objects.aggregate(m=Max("ended_at"))["m"],
        *(_snapshot_moment(path) for path in sorted(bridge_root.glob("*.json"))),
    ]
    found = [m for m in moments if m is not None]
    return max(found) if found else None


def _snapshot_moment(path: Path) -> dt.datetime | None:
    """When the bridge wrote a snapshot (quotes.json, open_orders.json, ...): its envelope's stamp."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    stamp = payload.get("refreshed_at") or payload.get("updated_at")
    if not isinstance(stamp, str) or not ISO_MOMENT.match(stamp):
        return None
    moment = dt.datetime.fromisoformat(stamp)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def demo_restamp(*, now: dt.datetime, bridge_root: Path) -> dt.timedelta:
    """Move every time of the demo forward so its latest moment is `now`; the offset used.

    Nothing moves backward: a demo whose latest moment is `now` or later is left as it is.
    """
    latest = demo_latest_moment(bridge_root=bridge_root)
    if latest is None or latest >= now:
        return dt.timedelta(0)
    offset = now - latest
    days = dt.timedelta(days=(now.astimezone(NEW_YORK).date() - latest.astimezone(NEW_YORK).date()).days)
    for model in apps.get_app_config("recovery").get_models():
        _rows_shift(model, offset=offset, days=days)
    if bridge_root.is_dir():
        for path in sorted(bridge_root.rglob("*")):
            _file_shift(path, offset=offset)
        events_stores_clear()  # this host's ledgers hold the files' old times
    return offset


def _rows_shift(model: type[models.Model], *, offset: dt.timedelta, days: dt.timedelta) -> None:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    moments = [f for f in fields if isinstance(f, models.DateTimeField)]
    dates = [f for f in fields if isinstance(f, models.DateField) and not isinstance(f, models.DateTimeField)]
    documents = [f for f in fields if isinstance(f, models.JSONField)]
    if not (moments or dates or documents):
        return
    for row in model._default_manager.all():
        changes: dict[str, Any] = {}
        for field in moments:
            if (value := getattr(row, field.attname)) is not None:
                changes[field.attname] = value + offset
        for field in dates:  # a New York trading date (trade_guard_state): by whole days
            if (value := getattr(row, field.attname)) is not None:
                changes[field.attname] = value + days
        for field in documents:
            value = getattr(row, field.attname)
            if (shifted := moments_shift(value, offset=offset)) != value:
                changes[field.attname] = shifted
        if changes:
            # update(), not save(): no default, signal or auto field gets a say.
            model._default_manager.filter(pk=row.pk).update(**changes)


def moments_shift(value: Any, *, offset: dt.timedelta) -> Any:
    """`value` (JSON) with every ISO moment in it moved by `offset`, written as it was."""
    if isinstance(value, dict):
        return {key: moments_shift(item, offset=offset) for key, item in value.items()}
    if isinstance(value, list):
        return [moments_shift(item, offset=offset) for item in value]
    if isinstance(value, str) and ISO_MOMENT.match(value):
        moved = (dt.datetime.fromisoformat(value) + offset).isoformat()
        return moved.replace("+00:00", "Z") if value.endswith("Z") else moved
    return value


def _file_shift(path: Path, *, offset: dt.timedelta) -> None:
    """A bridge file with its moments moved; what does not parse (a line still being written,
    a file meant to be unreadable) stays byte for byte."""
    if path.suffix == ".json" and path.is_file():
        try:
            payload = json.loads(path.read_text())
        except (UnicodeDecodeError, ValueError):
            return
        path.write_text(json.dumps(moments_shift(payload, offset=offset), indent=2))
    elif path.suffix == ".jsonl" and path.is_file():
        lines = path.read_text().split("\n")
        path.write_text("\n".join(_line_shift(line, offset=offset) for line in lines))


def _line_shift(line: str, *, offset: dt.timedelta) -> str:
    try:
        event = json.loads(line)
    except ValueError:
        return line
    return json.dumps(moments_shift(event, offset=offset))
