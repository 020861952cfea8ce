"""The sweep's metrics in Prometheus text format, for node_exporter's textfile collector.

Beside the metrics file, a small JSON state file keeps what this host knows when the
database is gone: the last success and the last outcome, written every run. So the last
success is in the metrics whatever the database does, once one run has succeeded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.db import DatabaseError
from django.db.models import Count, Sum
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from recovery import selectors
from recovery.db.audit import ACTOR_COMMAND
from recovery.db.models import SweepRun
from recovery.exceptions import error_line
from recovery.ops.runs import RunReport
from recovery.sweep.decisions import Reason

logger = logging.getLogger("recovery.runs")  # the name ops already read in the journal
PREFIX = "tradeops_auto_recover"
RESULTS = ("scanned", "cancelled", "replaced", "skipped", "failed")
GATES = (Reason.CLOCK_SKEW, Reason.IB_UNREACHABLE, Reason.BROKER_EVIDENCE_UNAVAILABLE)
STATE_SUFFIX = ".state.json"
# Outcomes after which the trading database is not asked again (it just failed the run).
DATABASE_GONE = (SweepRun.Outcome.COULD_NOT_RUN, SweepRun.Outcome.CONNECTION_LOST)


@dataclass(frozen=True)
class HostState:
    """What this host keeps of its runs, for when the database cannot say."""

    last_success: float | None = None  # Unix time the last ok run ended
    last_outcome: str | None = None
    last_run: float | None = None  # Unix time the last run started
    blocked_by: str | None = None


def metrics_state_path(path: Path) -> Path:
    """The state file beside `path`: tradeops.prom -> tradeops.state.json (node_exporter
    reads only *.prom files)."""
    return path.with_name(path.stem + STATE_SUFFIX)


def host_state_read(path: Path) -> HostState:
    """The state file's facts; none when it is missing or not what this module writes."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return HostState()
    except (OSError, ValueError) as exc:
        logger.warning("ignoring the metrics state file %s: %s", path, exc)
        return HostState()
    if not isinstance(data, dict):
        return HostState()
    success, run = data.get("last_success"), data.get("last_run")
    outcome, blocked = data.get("last_outcome"), data.get("blocked_by")
    return HostState(
        last_success=float(success) if _is_number(success) else None,
        last_outcome=outcome if isinstance(outcome, str) else None,
        last_run=float(run) if _is_number(run) else None,
        blocked_by=blocked if isinstance(blocked, str) else None,
    )


def host_state_write(path: Path, state: HostState) -> None:
    """Atomically: a temp file in the same folder, renamed over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(state), handle, sort_keys=True)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def metrics_write(*, path: Path, report: RunReport, now: dt.datetime, actor: str = ACTOR_COMMAND) -> None:
    """Write the last run and the last 24 hours; atomically (a temp file renamed over `path`)."""
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)

    result = report.result
    gauge("last_run_timestamp_seconds", "When the last run started (Unix time).").set(now.timestamp())
    duration = report.heartbeat.duration_seconds if report.heartbeat else 0.0
    gauge("last_run_duration_seconds", "How long the last run took.").set(duration)
    outcome = gauge("last_run_outcome", "1 for the outcome of the last run, 0 for the others.", ("outcome",))
    for value in SweepRun.Outcome.values:
        outcome.labels(outcome=value).set(1 if value == report.outcome else 0)
    is_blocked = result is not None and report.outcome is SweepRun.Outcome.BLOCKED
    blocked_by = result.blocked_by if result is not None and is_blocked else None
    blocked = gauge("last_run_blocked", "1 for the sweep-wide gate that blocked the last run.", ("gate",))
    for gate in GATES:
        blocked.labels(gate=str(gate)).set(1 if str(gate) == blocked_by else 0)
    orders = gauge("last_run_orders", "Orders of the last run by result.", ("result",))
    counts = result.counts() if result else {}
    for name in RESULTS:
        orders.labels(result=name).set(counts.get(name, 0))
    gauge(
        "last_run_left_for_next_run", "Orders due a write that the last run left to the next (time budget)."
    ).set(result.left_for_next_run if result else 0)
    by_reason = gauge("last_run_orders_by_reason", "Orders of the last run by decision reason.", ("reason",))
    reasons = result.reasons() if result else {}
    for reason in Reason:
        by_reason.labels(reason=str(reason)).set(reasons.get(str(reason), 0))
    state_path = metrics_state_path(path)
    success = _last_success(report, now=now, actor=actor, kept=host_state_read(state_path))
    gauge("last_success_timestamp_seconds", "When the last run that ended ok finished (Unix time).").set(
        success or 0
    )
    stale = _stale_orders(report, now=now)
    if stale is not None:
        gauge(
            "stale_orders", "Stale NEW orders (the sweep's candidates) after the last run, counted exactly."
        ).set(stale)
    try:
        _last_day(gauge, now=now, actor=actor)
    except DatabaseError as exc:
        # The database is gone (the run lost it, or never reached it): the last run's
        # outcome and the kept last success above are what matter; the history gauges
        # are left out this once.
        logger.warning("metrics without the 24h history: %s", error_line(exc))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    kept = HostState(
        last_success=success,
        last_outcome=str(report.outcome),
        last_run=now.timestamp(),
        blocked_by=blocked_by,
    )
    host_state_write(state_path, kept)


def _last_success(report: RunReport, *, now: dt.datetime, actor: str, kept: HostState) -> float | None:
    """The newest of: this run if it ended ok, the heartbeat's last ok run, the kept one."""
    known = [kept.last_success] if kept.last_success is not None else []
    if report.outcome is SweepRun.Outcome.OK:
        ended = report.heartbeat.ended_at if report.heartbeat else None
        known.append(ended.timestamp() if ended else now.timestamp())
    try:
        last_ok = (
            SweepRun.objects.filter(actor=actor, outcome=SweepRun.Outcome.OK)
            .order_by("-id")
            .values_list("ended_at", flat=True)
            .first()
        )
    except DatabaseError as exc:
        logger.warning("metrics: the last success kept on this host (%s)", error_line(exc))
    else:
        if last_ok is not None:
            known.append(last_ok.timestamp())
    return max(known) if known else None


def _stale_orders(report: RunReport, *, now: dt.datetime) -> int | None:
    """How many stale candidates the run left (None when the trading database cannot say)."""
    result = report.result
    if result is None or report.outcome in DATABASE_GONE:
        return None
    try:
        timeout = result.settings.new_timeout_seconds
        return selectors.stale_candidates(now=now, timeout_seconds=timeout).count()
    except DatabaseError as exc:
        logger.warning("metrics without the stale orders: %s", error_line(exc))
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _last_day(gauge, *, now: dt.datetime, actor: str) -> None:  # noqa: ANN001
    day = SweepRun.objects.filter(actor=actor, started_at__gte=now - dt.timedelta(hours=24))
    runs = gauge("runs_24h", "Runs in the last 24 hours by outcome.", ("outcome",))
    seen = dict(day.values_list("outcome").annotate(n=Count("id")).order_by())
    for value in SweepRun.Outcome.values:
        runs.labels(outcome=value).set(seen.get(value, 0))
    totals = day.aggregate(**{name: Sum(name) for name in RESULTS})
    orders = gauge("orders_24h", "Orders handled in the last 24 hours by result.", ("result",))
    for name in RESULTS:
        orders.labels(result=name).set(totals[name] or 0)
