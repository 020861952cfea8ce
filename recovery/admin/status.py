"""The admin's "Auto-recovery status" page: is the sweep alive, is now a safe moment."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from recovery.admin.denied import permission_denied_response
from recovery.admin.fate import (
    decision_rows,
    preview_orders,
    preview_summary,
    preview_warnings,
    settings_rows,
)
from recovery.admin.order_filters import STALE_NOT_CANDIDATE
from recovery.db.audit import admin_actor
from recovery.db.models import SweepRun, TradeOrder
from recovery.ops.health import Health
from recovery.ops.replacements import ReplacementIncidents
from recovery.ops.status import recovery_status_get
from recovery.sweep.labels import age_text

PERMISSION = "recovery.view_tradeorder"
PERMISSION_NAME = "Can view trade order (recovery.view_tradeorder)"
MSG_NO_PERMISSION = "The auto-recovery status page shows trade orders."


def _run_line(run: SweepRun | None, *, now: object, who: str) -> str:
    if run is None:
        return f"{who}: no run recorded yet."
    age = age_text((now - run.started_at).total_seconds())  # type: ignore[operator]
    counts = f"scanned {run.scanned}, cancelled {run.cancelled}, replaced {run.replaced}"
    at = f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"
    return f"{who}: {age} ago ({at}, by {run.actor}): {run.get_outcome_display()}; {counts}."


# The health's status as the page's heading says it; its message then says why.
HEALTH_TITLES = {
    "ok": "Healthy",
    "stale": "Not running",
    "failing": "Not healthy",
    "incident": "Incident",
    "unknown": "Cannot tell",
}


def health_text(health: Health, *, message: str | None = None) -> str:
    """The health's message without its leading status word ("ok: last run …" -> "last run …"):
    the heading says it in words."""
    text = health.message if message is None else message
    for status in HEALTH_TITLES:
        if text.startswith(f"{status}: "):
            return text[len(status) + 2 :]
    return text


INCIDENTS_SHOWN = 20  # orders listed per kind of incident; the count says the rest


def incident_rows(found: ReplacementIncidents | None) -> list[dict[str, object]]:
    """The replacements' incidents as rows: the worst first, each order linked, words then code."""
    if found is None:
        return []
    rows: list[dict[str, object]] = []

    def link(order_id: int) -> str:
        return reverse("admin:recovery_tradeorder_change", args=[order_id])

    for double in found.doubles[:INCIDENTS_SHOWN]:
        r = double.replacement
        rows.append({"kind": "double", "id": r.id, "url": link(r.id), "text": double.text, "code": "double"})
    for kind, flagged in (("ended", found.ended_unsent), ("not-picked-up", found.not_picked_up)):
        for f in flagged[:INCIDENTS_SHOWN]:
            text = f"{f.order.client_order_id}: {f.pickup.label}"
            rows.append(
                {"kind": kind, "id": f.order.id, "url": link(f.order.id), "text": text, "code": f.pickup.code}
            )
    hidden = sum(
        max(len(x) - INCIDENTS_SHOWN, 0) for x in (found.doubles, found.ended_unsent, found.not_picked_up)
    )
    if hidden:
        rows.append({"kind": "more", "id": None, "url": "", "text": f"and {hidden} more", "code": ""})
    return rows


def recovery_status_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        return permission_denied_response(request, permission=PERMISSION_NAME, reason=MSG_NO_PERMISSION)
    now = timezone.now()
    status = recovery_status_get(now=now, actor=admin_actor(request.user.get_username()))
    report = status.preview.as_dict()
    audit_url = reverse("admin:recovery_auditlog_changelist")
    runs = [
        {
            "run": run,
            "audit_url": f"{audit_url}?{urlencode({'sweep': status.audit_ids[run.sweep_id]})}"
            if run.sweep_id in status.audit_ids
            else "",
        }
        for run in status.runs
    ]
    changelist = reverse("admin:recovery_tradeorder_changelist")
    context = {
        **admin.site.each_context(request),
        "title": "Auto-recovery status",
        "opts": TradeOrder._meta,
        "status": status,
        "report": report,
        "rows": decision_rows(report, orders=preview_orders(status.preview)),
        "stale_summary": preview_summary(report, stale_total=status.stale_total),
        "incident_rows": incident_rows(status.health.replacements),
        "warnings": preview_warnings(report),
        "settings_rows": settings_rows(report),
        "runs": runs,
        "health_title": HEALTH_TITLES.get(status.health.status, status.health.status),
        "health_text": health_text(status.health),
        "health_cron_text": health_text(status.health, message=status.health.cron_message),
        "cron_line": _run_line(status.last_cron_run, now=now, who="Last cron run (auto_recover)"),
        "admin_line": _run_line(status.last_admin_run, now=now, who="Last admin run"),
        "not_candidates_url": f"{changelist}?{urlencode({'stale': STALE_NOT_CANDIDATE})}",
        "stale_url": f"{changelist}?{urlencode({'stale': 'yes'})}",
        "open_panels": True,
        "empty_text": "No stale order: nothing for the sweep to do.",
    }
    return TemplateResponse(request, "admin/recovery/status.html", context)
