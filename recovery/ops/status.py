"""What the status page shows: the dry run now, the gates, the settings, the recent runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings

from recovery import selectors
from recovery.db.audit import ACTION_SWEEP, ACTOR_COMMAND
from recovery.db.models import AuditLog, SweepRun, TradeOrder
from recovery.ops.charts import hourly_buckets, hourly_svg
from recovery.ops.health import Health, health_get
from recovery.services import sweep_run
from recovery.sweep.results import SweepResult

RECENT_RUNS = 50
CHART_HOURS = 48


@dataclass(frozen=True)
class RecoveryStatus:
    preview: SweepResult
    health: Health
    runs: list[SweepRun]
    chart: str
    last_cron_run: SweepRun | None
    last_admin_run: SweepRun | None
    audit_ids: dict[str, int]  # sweep_id -> its auto_recovery.sweep audit row
    not_candidates: int  # old NEW orders the sweep leaves alone (acknowledged, filled, intent only)
    stale_total: int  # stale orders now, exactly (the preview decides only a run's first ones)


def _audit_ids(runs: list[SweepRun]) -> dict[str, int]:
    """The sweep audit rows of these runs, in one query over the newest sweep rows (indexed by action)."""
    wanted = {r.sweep_id for r in runs if r.sweep_id}
    if not wanted:
        return {}
    rows = (
        AuditLog.objects.filter(action=ACTION_SWEEP)
        .order_by("-id")
        .values_list("id", "detail__sweep_id")[: RECENT_RUNS * 2]
    )
    return {sweep_id: pk for pk, sweep_id in rows if sweep_id in wanted}


def _not_candidates_count(*, now: dt.datetime, timeout_seconds: int, indexed: bool) -> int:
    cutoff = now - dt.timedelta(seconds=timeout_seconds)
    candidates = selectors.stale_candidates(now=now, timeout_seconds=timeout_seconds)
    old_new = (
        TradeOrder.objects.filter(status="NEW", created_at__lte=cutoff)
        .exclude(pk__in=candidates.values("pk"))
        .order_by()
    )
    return selectors.new_orders_count(old_new, indexed=indexed)


def recovery_status_get(*, now: dt.datetime, actor: str) -> RecoveryStatus:
    preview = sweep_run(now=now, actor=actor, dry_run=True)
    since = now - dt.timedelta(hours=CHART_HOURS)
    rows = SweepRun.objects.filter(started_at__gte=since).values_list(
        "started_at", "cancelled", "replaced", "skipped"
    )
    runs = list(SweepRun.objects.order_by("-id")[:RECENT_RUNS])
    timeout = preview.settings.new_timeout_seconds
    indexed = selectors.trade_orders_index_present(selectors.STALE_INDEX)  # asked once for both counts
    return RecoveryStatus(
        preview=preview,
        health=health_get(now=now, max_age_seconds=settings.RECOVERY_HEALTH_MAX_AGE_SECONDS),
        runs=runs,
        chart=hourly_svg(hourly_buckets(rows, now=now, hours=CHART_HOURS)),
        last_cron_run=SweepRun.objects.filter(actor=ACTOR_COMMAND).order_by("-id").first(),
        last_admin_run=SweepRun.objects.filter(actor__startswith="admin:").order_by("-id").first(),
        audit_ids=_audit_ids(runs),
        not_candidates=_not_candidates_count(now=now, timeout_seconds=timeout, indexed=indexed),
        stale_total=selectors.stale_order_total(now=now, timeout_seconds=timeout, indexed=indexed),
    )
