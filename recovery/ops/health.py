"""Is the sweep alive, and is the backend sending its replacements?

The last command run, read from the heartbeat table (blocked, breaker_open and
over_budget runs are an alarm only after RECOVERY_HEALTH_DEGRADED_MINUTES of them); then
this project's replacements
(ops.replacements): one not picked up by the backend's sender, one that ended SKIPPED or
REJECTED without a fill, or a double makes health an incident, in words naming the orders.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import QuerySet

from recovery.db.audit import ACTOR_COMMAND
from recovery.db.models import SweepRun
from recovery.db.timestamps import iso_utc
from recovery.exceptions import error_line
from recovery.ops.replacements import ReplacementIncidents, replacement_incidents_get
from recovery.ops.runs import DEGRADED

EXIT_OK, EXIT_BAD, EXIT_UNKNOWN = 0, 1, 2
MSG_OK = "ok: last run {age} ago"
MSG_OK_DEGRADED = "ok so far: {outcome} for {spell} (an alarm after {limit}): {message}; last run {age} ago"
MSG_DEGRADED = "{outcome} for {spell}: {message}; last run {age} ago"
# The states a spell is counted in, as "<words> for 7 minutes".
SPELL_WORDS = {
    SweepRun.Outcome.BLOCKED: "blocked",
    SweepRun.Outcome.BREAKER_OPEN: "circuit breaker open",
    SweepRun.Outcome.OVER_BUDGET: "over its time budget",
}
MSG_STALE = "stale: last run {age} ago, past the limit of {max_age}"
MSG_FAILING = "failing: last run {age} ago: {outcome}: {message}"
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
    last_outcome_label: str | None = None  # the last outcome in words
    blocked_by: str | None = None  # blocked: the gate's reason code
    degraded_since: dt.datetime | None = None  # blocked / breaker open / over budget since
    degraded_seconds: float | None = None

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
            "last_outcome_label": self.last_outcome_label,
            "blocked_by": self.blocked_by,
            "degraded_since": iso_utc(self.degraded_since) if self.degraded_since else None,
            "degraded_seconds": self.degraded_seconds,
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


def heartbeat_health_get(
    *,
    now: dt.datetime,
    max_age_seconds: int,
    actor: str = ACTOR_COMMAND,
    degraded_minutes: int | None = None,
) -> Health:
    """The newest run that did work (a run that found the lock held proves nothing).

    A run that was blocked, had the breaker open or ran over budget is not an alarm
    yet; runs that have been so for more than `degraded_minutes` (default
    RECOVERY_HEALTH_DEGRADED_MINUTES) are.
    """
    if degraded_minutes is None:
        degraded_minutes = settings.RECOVERY_HEALTH_DEGRADED_MINUTES
    runs = SweepRun.objects.filter(actor=actor).exclude(outcome=SweepRun.Outcome.LOCK_HELD)
    try:
        last = runs.order_by("-id").first()
        since = _degraded_since(runs, last=last) if last is not None else None
    except DatabaseError as exc:
        error = error_line(exc)
        return Health("unknown", EXIT_UNKNOWN, MSG_UNREADABLE.format(error=error))
    if last is None:
        return Health("unknown", EXIT_UNKNOWN, MSG_NONE)
    age = max((now - last.ended_at).total_seconds(), 0.0)
    outcome = SweepRun.Outcome(last.outcome)
    facts: dict[str, Any] = {
        "age_seconds": round(age, 1),
        "last_outcome": last.outcome,
        "last_sweep_id": last.sweep_id or None,
        "last_outcome_label": outcome.label,
        "blocked_by": last.blocked_by or None,
    }
    ago = duration_words(age)
    if age > max_age_seconds:
        message = MSG_STALE.format(age=ago, max_age=duration_words(max_age_seconds))
        return Health("stale", EXIT_BAD, message, **facts)
    if since is not None:
        spent = max((now - since).total_seconds(), 0.0)
        facts.update(degraded_since=since, degraded_seconds=round(spent, 1))
        words = {
            "outcome": SPELL_WORDS.get(outcome, outcome.label),
            "spell": duration_words(spent),
            "message": last.message or outcome.label,
            "age": ago,
        }
        if spent > degraded_minutes * 60:
            return Health("failing", EXIT_BAD, MSG_DEGRADED.format(**words), **facts)
        limit = duration_words(degraded_minutes * 60)
        return Health("ok", EXIT_OK, MSG_OK_DEGRADED.format(limit=limit, **words), **facts)
    if outcome is not SweepRun.Outcome.OK:
        message = MSG_FAILING.format(age=ago, outcome=outcome.label, message=last.message or "see the log")
        return Health("failing", EXIT_BAD, message, **facts)
    return Health("ok", EXIT_OK, MSG_OK.format(age=ago), **facts)


def _degraded_since(runs: QuerySet[SweepRun], *, last: SweepRun) -> dt.datetime | None:
    """When the runs began to be blocked / breaker open / over budget, without a break
    (any other outcome ends a spell); None when the last run was none of those."""
    if last.outcome not in DEGRADED:
        return None
    good = runs.exclude(outcome__in=DEGRADED).order_by("-id").values_list("id", flat=True).first()
    spell = runs.filter(id__gt=good) if good is not None else runs
    return spell.order_by("id").values_list("started_at", flat=True).first()


def duration_words(seconds: float) -> str:
    """ "40 seconds", "7 minutes", "3 hours", "4 days": how long, as a person says it."""
    whole = int(max(seconds, 0))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if whole >= size:
            count = whole // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{whole} second{'' if whole == 1 else 's'}"
