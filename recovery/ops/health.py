"""Is the sweep alive, and is the backend sending its replacements?

The last command run, read from the heartbeat table; then this project's replacements
(ops.replacements): one not picked up by the backend's sender, one that ended SKIPPED or
REJECTED without a fill, or a double makes health an incident, in words naming the orders.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from django.db import DatabaseError

from recovery.db.audit import ACTOR_COMMAND
from recovery.db.models import SweepRun
from recovery.exceptions import error_line
from recovery.ops.replacements import ReplacementIncidents, replacement_incidents_get

EXIT_OK, EXIT_BAD, EXIT_UNKNOWN = 0, 1, 2
MSG_OK = "ok: last run {age:.0f}s ago ({outcome})"
MSG_STALE = "stale: last run {age:.0f}s ago, more than {max_age}s"
MSG_FAILING = "failing: last run {age:.0f}s ago ended {outcome}: {message}"
MSG_NONE = "unknown: no auto_recover run recorded yet"
MSG_UNREADABLE = "unknown: cannot read the heartbeat: {error}"
MSG_INCIDENT = "incident: {incidents} (cron sweep {heartbeat})"
MSG_ALSO_INCIDENT = "{heartbeat}; incident: {incidents}"
MSG_REPLACEMENTS_UNREADABLE = "unknown: cannot read the replacements: {error}"


@dataclass(frozen=True)
class Health:
    status: str  # ok | stale | failing | unknown | incident
    exit_code: int
    message: str
    age_seconds: float | None = None
    last_outcome: str | None = None
    last_sweep_id: str | None = None
    incidents: tuple[str, ...] = ()  # the replacements' incidents, one sentence per kind
    cron_message: str = ""  # the heartbeat's own line, without the incidents
    replacements: ReplacementIncidents | None = None  # None when they could not be read

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "age_seconds": self.age_seconds,
            "last_outcome": self.last_outcome,
            "last_sweep_id": self.last_sweep_id,
            "incidents": list(self.incidents),
            "cron_message": self.cron_message,
            "replacements": self.replacements.as_dict() if self.replacements is not None else None,
        }


def health_get(*, now: dt.datetime, max_age_seconds: int, actor: str = ACTOR_COMMAND) -> Health:
    """The heartbeat's health, then the replacements' incidents over it.

    A known incident wins over "cannot tell" (exit 1, not 2); a stale or failing cron
    keeps its status, with the incidents added to its message.
    """
    beat = heartbeat_health_get(now=now, max_age_seconds=max_age_seconds, actor=actor)
    beat = replace(beat, cron_message=beat.message)
    try:
        found = replacement_incidents_get(now=now)
    except DatabaseError as exc:
        message = f"{beat.message}; {MSG_REPLACEMENTS_UNREADABLE.format(error=error_line(exc))}"
        if beat.status == "ok":
            return replace(beat, status="unknown", exit_code=EXIT_UNKNOWN, message=message)
        return replace(beat, message=message)
    incidents = tuple(found.sentences(now=now))
    if not incidents:
        return replace(beat, replacements=found)
    text = "; ".join(incidents)
    if beat.status in ("stale", "failing"):
        message = MSG_ALSO_INCIDENT.format(heartbeat=beat.message, incidents=text)
        return replace(beat, message=message, incidents=incidents, replacements=found)
    message = MSG_INCIDENT.format(incidents=text, heartbeat=beat.message)
    return replace(
        beat, status="incident", exit_code=EXIT_BAD, message=message, incidents=incidents, replacements=found
    )


def heartbeat_health_get(*, now: dt.datetime, max_age_seconds: int, actor: str = ACTOR_COMMAND) -> Health:
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
