"""Is the sweep alive? The last command run, read from the heartbeat table."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from django.db import DatabaseError

from recovery.db.audit import ACTOR_COMMAND
from recovery.db.models import SweepRun
from recovery.exceptions import error_line

EXIT_OK, EXIT_BAD, EXIT_UNKNOWN = 0, 1, 2
MSG_OK = "ok: last run {age:.0f}s ago ({outcome})"
MSG_STALE = "stale: last run {age:.0f}s ago, more than {max_age}s"
MSG_FAILING = "failing: last run {age:.0f}s ago ended {outcome}: {message}"
MSG_NONE = "unknown: no auto_recover run recorded yet"
MSG_UNREADABLE = "unknown: cannot read the heartbeat: {error}"


@dataclass(frozen=True)
class Health:
    status: str  # ok | stale | failing | unknown
    exit_code: int
    message: str
    age_seconds: float | None = None
    last_outcome: str | None = None
    last_sweep_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def health_get(*, now: dt.datetime, max_age_seconds: int, actor: str = ACTOR_COMMAND) -> Health:
    """The newest run that did work (a run that found the lock held proves nothing)."""
    try:
        last = (
            SweepRun.objects.filter(actor=actor)
            .exclude(outcome=SweepRun.Outcome.LOCK_HELD)
            .order_by("-id")
            .first()
        )
    except DatabaseError as exc:
        error = error_line(exc)
        return Health("unknown", EXIT_UNKNOWN, MSG_UNREADABLE.format(error=error))
    if last is None:
        return Health("unknown", EXIT_UNKNOWN, MSG_NONE)
    age = max((now - last.ended_at).total_seconds(), 0.0)
    facts = {
        "age_seconds": round(age, 1),
        "last_outcome": last.outcome,
        "last_sweep_id": last.sweep_id or None,
    }
    if age > max_age_seconds:
        return Health("stale", EXIT_BAD, MSG_STALE.format(age=age, max_age=max_age_seconds), **facts)
    if last.outcome != SweepRun.Outcome.OK:
        message = MSG_FAILING.format(age=age, outcome=last.outcome, message=last.message or "see the log")
        return Health("failing", EXIT_BAD, message, **facts)
    return Health("ok", EXIT_OK, MSG_OK.format(age=age, outcome=last.outcome), **facts)
