"""The audit trail: read only for everyone, superusers included."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from recovery.admin.base import ReadOnlyLargeTableAdmin
from recovery.audit import (
    ACTION_CANCEL,
    ACTION_REPLACE,
    ACTION_SETTINGS_UPDATE,
    ACTION_SWEEP,
    ACTOR_COMMAND,
    RESOURCE_ORDER,
    RESOURCE_SETTINGS,
    RESOURCE_SWEEP,
)
from recovery.models import AuditLog, TradeOrder

RESOURCE_TYPES = (RESOURCE_ORDER, RESOURCE_SWEEP, RESOURCE_SETTINGS)
ACTIONS = (ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP, ACTION_SETTINGS_UPDATE)
SUMMARY_LENGTH = 120
DECISION_COLUMNS = ("order", "client_order_id", "decision", "reason", "replacement", "detail")


class ActionFilter(admin.SimpleListFilter):
    title, parameter_name = "action", "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(a, a) for a in ACTIONS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(action=self.value()) if self.value() else queryset


class ResourceTypeFilter(admin.SimpleListFilter):
    title, parameter_name = "resource type", "resource_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(r, r) for r in RESOURCE_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(resource_type=self.value()) if self.value() else queryset


class ActorFilter(admin.SimpleListFilter):
    title, parameter_name = "actor", "actor_kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (ACTOR_COMMAND, "cron (auto_recover)"),
            ("admin", "admin users"),
            ("system", "the backend (system)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "admin":
            return queryset.filter(actor__startswith="admin:")
        return queryset.filter(actor=self.value()) if self.value() else queryset


class TimeRangeFilter(admin.SimpleListFilter):
    """Today / 7 / 30 days; not date_hierarchy, which scans and needs MySQL's tz tables."""

    title, parameter_name = "time", "since"
    RANGES = {"today": 0, "7d": 7, "30d": 30}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("today", "today (UTC)"), ("7d", "last 7 days"), ("30d", "last 30 days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        days = self.RANGES.get(self.value() or "")
        if days is None:
            return queryset
        now = timezone.now()
        start = (
            now.replace(hour=0, minute=0, second=0, microsecond=0)
            if days == 0
            else now - dt.timedelta(days=days)
        )
        return queryset.filter(created_at__gte=start)


class _LinkFilter(admin.SimpleListFilter):
    """A filter reached through links (a sweep, an order's chain); in the sidebar only while on."""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value)] if value else []


def _ints(text: str | None) -> list[int]:
    return [int(part) for part in (text or "").split(",") if part.strip().isdigit()][:200]


class ResourceIdsFilter(_LinkFilter):
    title, parameter_name = "orders", "resource_ids"

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        ids = _ints(self.value())
        return (
            queryset.filter(resource_type=RESOURCE_ORDER, resource_id__in=ids) if self.value() else queryset
        )


class SweepFilter(_LinkFilter):
    """One sweep: its own row and the order rows it wrote, found by the indexed resource ids."""

    title, parameter_name = "sweep", "sweep"

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        ids = _ints(self.value())
        if not self.value():
            return queryset
        sweep = AuditLog.objects.filter(pk__in=ids[:1], action=ACTION_SWEEP).first()
        detail = sweep.detail if sweep and isinstance(sweep.detail, dict) else {}
        orders = [o for o in detail.get("orders", []) if isinstance(o, dict)]
        order_ids = {o.get("id") for o in orders} | {o.get("replacement_id") for o in orders}
        order_ids = sorted(i for i in order_ids if type(i) is int)
        rows = Q(
            resource_type=RESOURCE_ORDER,
            resource_id__in=order_ids,
            action__in=[ACTION_CANCEL, ACTION_REPLACE],
        )
        mine = queryset.filter(Q(pk__in=ids[:1]) | rows)
        sweep_id = detail.get("sweep_id")
        # Only rows of this sweep: an order may appear in several sweeps' rows.
        return mine if not sweep_id else mine.filter(Q(pk__in=ids[:1]) | Q(detail__sweep_id=sweep_id))


def _summary(entry: AuditLog) -> str:
    detail = entry.detail
    if not isinstance(detail, dict):
        return str(detail)[:SUMMARY_LENGTH] if detail is not None else ""
    if entry.action == ACTION_SWEEP:
        counts = " ".join(
            f"{k}={detail.get(k)}" for k in ("scanned", "cancelled", "replaced", "skipped", "failed")
        )
        return ("CIRCUIT OPEN " if detail.get("circuit_open") else "") + counts
    if entry.action == ACTION_REPLACE:
        origin = f"#{detail.get('origin_order_id')} {detail.get('origin_client_order_id')}"
        return f"replaces {origin} (attempt {detail.get('attempt')})"
    if entry.action == ACTION_CANCEL:
        return f"{detail.get('client_order_id')}: {detail.get('decision')} ({detail.get('reason')})"
    if entry.action == ACTION_SETTINGS_UPDATE:
        return f"changed: {', '.join(detail.get('changed_keys') or []) or '-'}"
    return json.dumps(detail, default=str)[:SUMMARY_LENGTH]


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyLargeTableAdmin):
    list_display = ("created_at", "actor", "action", "resource", "summary")
    list_filter = (
        ActionFilter,
        ResourceTypeFilter,
        ActorFilter,
        TimeRangeFilter,
        ResourceIdsFilter,
        SweepFilter,
    )
    search_fields = ("action",)  # shows the box; get_search_results does exact, indexed lookups
    search_help_text = "Exact resource id, actor, action or client_order_id."
    sortable_by = ()
    fields = ("id", "created_at", "actor", "action", "resource", "detail_pretty", "decisions")
    readonly_fields = fields

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}  # not even delete_selected

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        # resource_type IN (...) lets MySQL use the (resource_type, resource_id) index.
        match = Q(action=term) | Q(actor=term)
        if term.isdigit():
            match |= Q(resource_type__in=RESOURCE_TYPES, resource_id=int(term))
        order_ids = list(TradeOrder.objects.filter(client_order_id=term).values_list("id", flat=True)[:1])
        if order_ids:
            match |= Q(resource_type=RESOURCE_ORDER, resource_id__in=order_ids)
        return queryset.filter(match), False

    @admin.display(description="resource")
    def resource(self, entry: AuditLog) -> str:
        if entry.resource_type == RESOURCE_ORDER and entry.resource_id is not None:
            url = reverse("admin:recovery_tradeorder_change", args=[entry.resource_id])
            return format_html('<a href="{}">order #{}</a>', url, entry.resource_id)
        if entry.resource_id is None:
            return entry.resource_type
        return f"{entry.resource_type} #{entry.resource_id}"

    @admin.display(description="summary")
    def summary(self, entry: AuditLog) -> str:
        return _summary(entry)

    @admin.display(description="detail")
    def detail_pretty(self, entry: AuditLog) -> str:
        text = json.dumps(entry.detail, indent=2, sort_keys=True, default=str, ensure_ascii=False)
        return format_html('<pre class="audit-detail">{}</pre>', text)

    @admin.display(description="decisions of this sweep")
    def decisions(self, entry: AuditLog) -> str:
        detail = entry.detail if isinstance(entry.detail, dict) else {}
        orders = (
            [o for o in detail.get("orders", []) if isinstance(o, dict)]
            if entry.action == ACTION_SWEEP
            else []
        )
        if not orders:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    o.get("id"),
                    o.get("client_order_id"),
                    o.get("decision"),
                    o.get("reason"),
                    o.get("replacement_client_order_id") or "-",
                    o.get("detail") or "",
                )
                for o in orders
            ),
        )
        head = format_html_join("", "<th>{}</th>", ((h,) for h in DECISION_COLUMNS))
        return format_html('<table class="sweep-decisions"><tr>{}</tr>{}</table>', head, rows)
