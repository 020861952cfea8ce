"""What the status page shows: the dry run now, the gates, the settings, the recent runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings

from recovery.charts import hourly_buckets, hourly_svg
from recovery.health import Health, health_get
from recovery.models import SweepRun
from recovery.results import SweepResult
from recovery.services import sweep_run

RECENT_RUNS = 50
CHART_HOURS = 48


@dataclass(frozen=True)
class RecoveryStatus:
    preview: SweepResult
    health: Health
    runs: list[SweepRun]
    chart: str


def recovery_status_get(*, now: dt.datetime, actor: str) -> RecoveryStatus:
    preview = sweep_run(now=now, actor=actor, dry_run=True)
    since = now - dt.timedelta(hours=CHART_HOURS)
    rows = SweepRun.objects.filter(started_at__gte=since).values_list(
        "started_at", "cancelled", "replaced", "skipped"
    )
    return RecoveryStatus(
        preview=preview,
        health=health_get(now=now, max_age_seconds=settings.RECOVERY_HEALTH_MAX_AGE_SECONDS),
        runs=list(SweepRun.objects.order_by("-id")[:RECENT_RUNS]),
        chart=hourly_svg(hourly_buckets(rows, now=now, hours=CHART_HOURS)),
    )
