"""The sweep's metrics in Prometheus text format, for node_exporter's textfile collector."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from django.db import DatabaseError
from django.db.models import Count, Sum
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from recovery.db.audit import ACTOR_COMMAND
from recovery.db.models import SweepRun
from recovery.exceptions import error_line
from recovery.ops.runs import RunReport
from recovery.sweep.decisions import Reason

logger = logging.getLogger("recovery.runs")  # the name ops already read in the journal
PREFIX = "tradeops_auto_recover"
RESULTS = ("scanned", "cancelled", "replaced", "skipped", "failed")


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
    orders = gauge("last_run_orders", "Orders of the last run by result.", ("result",))
    counts = result.counts() if result else {}
    for name in RESULTS:
        orders.labels(result=name).set(counts.get(name, 0))
    by_reason = gauge("last_run_orders_by_reason", "Orders of the last run by decision reason.", ("reason",))
    reasons = result.reasons() if result else {}
    for reason in Reason:
        by_reason.labels(reason=str(reason)).set(reasons.get(str(reason), 0))
    try:
        last_ok = (
            SweepRun.objects.filter(actor=actor, outcome=SweepRun.Outcome.OK)
            .order_by("-id")
            .values_list("ended_at", flat=True)
            .first()
        )
        success = gauge(
            "last_success_timestamp_seconds", "When the last run that ended ok finished (Unix time)."
        )
        success.set(last_ok.timestamp() if last_ok else 0)
        _last_day(gauge, now=now, actor=actor)
    except DatabaseError as exc:
        # The database is gone (the run lost it, or never reached it): the last run's
        # outcome above is what matters; the history gauges are left out this once.
        logger.warning("metrics without the 24h history: %s", error_line(exc))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)


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
