"""Runs of the sweep as operations sees them: one heartbeat row per run, health, metrics.

Every run — command or admin, including runs that found nothing, found the lock held,
or could not run — leaves a SweepRun row in this app's own database (DATABASE_URL).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections

from recovery.db.audit_spool import audit_spool_flush
from recovery.db.checks import trading_schema_assert
from recovery.db.errors import failed_databases
from recovery.db.locks import sweep_lock
from recovery.db.models import SweepRun
from recovery.db.routers import trading_alias
from recovery.exceptions import SchemaNotReady, SweepLockHeld, error_line
from recovery.services import sweep_run
from recovery.sweep.results import SweepResult

logger = logging.getLogger("recovery.runs")  # the name ops already read in the journal
Outcome = SweepRun.Outcome
MSG_LOCK_HELD = "another auto_recover run holds the lock ({name}); nothing done"
MSG_COULD_NOT_RUN = "could not run: {reason}"
MSG_CONNECTION_LOST = (
    "lost the database connection mid-sweep ({error}): {cancelled} order(s) recovered before it; "
    "order {in_flight} was in flight (committed whole or not at all; the next run sees which); "
    "{not_tried} not tried stay NEW for the next run"
)
MSG_BLOCKED = "{why}; nothing was changed"
MSG_BREAKER_OPEN = "circuit breaker open: {count} orders would have been re-placed; nothing was changed"
# The one stderr line of a change of state (cron mails every line: not every minute).
MSG_STATE_CHANGED = "auto_recover is now {state}"
MSG_OK_AGAIN = "auto_recover is ok again (it was {state})"
PRUNE_BATCH = 5000
# Outcomes that say a run did not do its job without anything failing: health tolerates
# them for RECOVERY_HEALTH_DEGRADED_MINUTES, then says why in words.
DEGRADED = frozenset({Outcome.BLOCKED, Outcome.BREAKER_OPEN, Outcome.OVER_BUDGET})
# Outcomes not told as a change of state: a failure says so on stderr every run
# (something failed in that run), a run that found the lock held proves nothing.
NOT_A_STATE = frozenset({Outcome.FAILED, Outcome.CONNECTION_LOST, Outcome.COULD_NOT_RUN, Outcome.LOCK_HELD})


@dataclass(frozen=True)
class RunReport:
    outcome: Outcome
    result: SweepResult | None
    message: str
    heartbeat: SweepRun | None
    # One line when this run's state (outcome, and for blocked its gate) differs from the
    # previous run's of the same actor, else None.
    state_line: str | None = None


def sweep_run_recorded(
    *,
    now: dt.datetime,
    actor: str,
    exclusive: bool = False,
    check_schema: bool = False,
    **sweep: Any,
) -> RunReport:
    """Run the sweep (not a dry run), translate what can go wrong, record the heartbeat."""
    started = time.monotonic()
    result, message = None, ""
    try:
        if check_schema:
            trading_schema_assert(using=trading_alias())
        audit_spool_flush()  # a summary row a run that lost its connection could not write
        result = _sweep(exclusive=exclusive, now=now, actor=actor, **sweep)
        outcome = _outcome_of(result)
        if result.connection_lost:
            message = connection_lost_message(result)
            _drop_lost_connections()
    except SweepLockHeld as exc:
        outcome, message = Outcome.LOCK_HELD, MSG_LOCK_HELD.format(name=exc)
    except (SchemaNotReady, DatabaseError) as exc:
        outcome, message = Outcome.COULD_NOT_RUN, could_not_run_message(exc)
    if result is not None and not message:
        message = run_message(outcome, result)
    blocked_by = (result.blocked_by or "") if outcome is Outcome.BLOCKED and result else ""
    previous = _previous_run(actor=actor) if outcome not in NOT_A_STATE else None
    duration = time.monotonic() - started
    heartbeat = _heartbeat_write(
        now=now,
        duration=duration,
        actor=actor,
        outcome=outcome,
        result=result,
        message=message,
        blocked_by=blocked_by,
    )
    line = state_change_line(
        previous=previous, outcome=outcome, blocked_by=blocked_by, message=message, result=result
    )
    return RunReport(outcome=outcome, result=result, message=message, heartbeat=heartbeat, state_line=line)


def run_message(outcome: Outcome, result: SweepResult) -> str:
    """What the heartbeat says of a run that ran but did not do all its job, in words."""
    if outcome is Outcome.BLOCKED:
        return MSG_BLOCKED.format(why=result.blocked)
    if outcome is Outcome.BREAKER_OPEN:
        return MSG_BREAKER_OPEN.format(count=result.would_replace)
    if outcome is Outcome.OVER_BUDGET:
        return result.out_of_time or ""
    return ""


def _previous_run(*, actor: str) -> SweepRun | None:
    """The actor's last run that did work (a run that found the lock held proves nothing)."""
    try:
        return SweepRun.objects.filter(actor=actor).exclude(outcome=Outcome.LOCK_HELD).order_by("-id").first()
    except DatabaseError:
        return None  # unknown: the run is told as if it were the first


def state_change_line(
    *,
    previous: SweepRun | None,
    outcome: Outcome,
    blocked_by: str,
    message: str,
    result: SweepResult | None,
) -> str | None:
    """The line ops get when a run's state changes, or None.

    Failures (failed, connection_lost, could_not_run) have their own line every run. The
    breaker tells its own changes, once across hosts (services.sweep: its error line and
    audit row when it opens, its line when it closes): not told twice.
    """
    if outcome in NOT_A_STATE:
        return None
    breaker = result.breaker_changed if result is not None else None
    was = Outcome(previous.outcome) if previous is not None else None
    if was is outcome and (previous.blocked_by if previous else "") == blocked_by:
        return None
    if outcome is Outcome.BREAKER_OPEN and breaker is not None:
        return None
    if outcome is Outcome.OK:
        if was is None or was is Outcome.OK or (was is Outcome.BREAKER_OPEN and breaker is not None):
            return None
        return MSG_OK_AGAIN.format(state=_state_words(was, previous.message if previous else ""))
    return MSG_STATE_CHANGED.format(state=_state_words(outcome, message))


def _state_words(outcome: Outcome, message: str) -> str:
    return f"{outcome.label} — {message}" if message else str(outcome.label)


def could_not_run_message(exc: SchemaNotReady | DatabaseError) -> str:
    """The one line a run that never got to the orders reports (command exit 2, heartbeat)."""
    if isinstance(exc, SchemaNotReady):
        return MSG_COULD_NOT_RUN.format(reason=exc)
    reason = f"database error in {failed_databases()}: {error_line(exc)}"
    return MSG_COULD_NOT_RUN.format(reason=reason)


def _sweep(*, exclusive: bool, **sweep: Any) -> SweepResult:
    """sweep_run, under the command's named lock when `exclusive`."""
    if not exclusive:
        return sweep_run(**sweep)
    result: SweepResult | None = None
    try:
        with sweep_lock(using=trading_alias()):
            result = sweep_run(**sweep)
    except (DatabaseError, ValueError):
        # The named lock lives on the connection the sweep lost: the server released it
        # with the connection, so failing to release it (django-mysql's ValueError for
        # an unheld lock, or no server to ask) is expected then, and only then.
        if result is None or not result.connection_lost:
            raise
    assert result is not None
    return result


def connection_lost_message(result: SweepResult) -> str:
    return MSG_CONNECTION_LOST.format(
        error=result.connection_lost,
        cancelled=result.cancelled,
        in_flight=result.in_flight,
        not_tried=result.not_tried,
    )


def _drop_lost_connections() -> None:
    """Close handles the lost server left dead, so the heartbeat reconnects (if it can)."""
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


def _outcome_of(result: SweepResult) -> Outcome:
    if result.connection_lost:
        return Outcome.CONNECTION_LOST
    if result.blocked_by:
        return Outcome.BLOCKED
    if result.circuit_open:
        return Outcome.BREAKER_OPEN
    if result.failed:
        return Outcome.FAILED
    return Outcome.OVER_BUDGET if result.out_of_time else Outcome.OK


def _heartbeat_write(
    *,
    now: dt.datetime,
    duration: float,
    actor: str,
    outcome: Outcome,
    result: SweepResult | None,
    message: str,
    blocked_by: str = "",
) -> SweepRun | None:
    counts = result.counts() if result else {}
    row = SweepRun(
        started_at=now,
        ended_at=now + dt.timedelta(seconds=duration),
        duration_seconds=round(duration, 6),
        actor=actor[:64],
        host=socket.gethostname()[:255],
        sweep_id=result.sweep_id if result else "",
        outcome=outcome,
        scanned=counts.get("scanned", 0),
        cancelled=counts.get("cancelled", 0),
        replaced=counts.get("replaced", 0),
        skipped=counts.get("skipped", 0),
        failed=counts.get("failed", 0),
        reasons=result.reasons() if result else {},
        message=message,
        blocked_by=blocked_by[:32],
    )
    try:
        row.save()
    except DatabaseError as exc:
        # The heartbeat must never turn a sweep into a crash; its absence is what
        # auto_recover_health reports. When the run could not reach its database
        # either, the command's own one-line error already says why.
        level = logging.DEBUG if outcome is Outcome.COULD_NOT_RUN else logging.ERROR
        logger.log(level, "could not record the heartbeat of a %s run: %s", outcome, error_line(exc))
        return None
    return row


def heartbeat_prune(*, now: dt.datetime) -> int:
    """Delete heartbeat rows older than the retention, in one indexed batch per run."""
    cutoff = now - dt.timedelta(days=settings.RECOVERY_HEARTBEAT_RETENTION_DAYS)
    try:
        old = list(SweepRun.objects.filter(started_at__lt=cutoff).values_list("id", flat=True)[:PRUNE_BATCH])
        if not old:
            return 0
        deleted, _ = SweepRun.objects.filter(id__in=old).delete()
    except DatabaseError as exc:
        logger.error("could not prune the heartbeat table: %s", error_line(exc))
        return 0
    return deleted
