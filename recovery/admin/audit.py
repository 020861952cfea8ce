"""The audit trail: read only for everyone, superusers included."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from recovery.admin.audit_detail import (
    audit_links,
    audit_summary,
    detail_folded,
    settings_diff,
    sweep_decisions,
)
from recovery.admin.audit_filters import (
    RESOURCE_TYPES,
    ActionFilter,
    ActorFilter,
    ResourceIdsFilter,
    ResourceTypeFilter,
    SweepFilter,
    TimeRangeFilter,
)
from recovery.admin.base import Counter, ReadOnlyLargeTableAdmin
from recovery.db.audit import ACTION_SETTINGS_UPDATE, ACTION_SWEEP, ACTION_WORDS, RESOURCE_ORDER
from recovery.db.models import AuditLog, TradeOrder

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyLargeTableAdmin):
    list_display = ("when", "actor", "action_words", "resource", "summary")
    list_display_links = ("when",)
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
    readonly_fields = (
        "id",
        "when",
        "actor",
        "action",
        "resource",
        "summary",
        "links",
        "decisions",
        "settings_changes",
        "detail_raw",
    )

    def exact_counter(self, request: HttpRequest) -> Counter | None:
        """An order's or a sweep's entries are few and found by the (resource_type, resource_id)
        index: counted exactly. The whole trail counts a few pages ahead (CountedPaginator)."""
        linked = (ResourceIdsFilter.parameter_name, SweepFilter.parameter_name)
        if any(request.GET.get(name) for name in linked):
            return QuerySet.count
        return None

    def get_fields(self, request: HttpRequest, obj: AuditLog | None = None) -> list[str]:
        # What a person reads first (a sweep's decisions, a settings diff, the links), the raw JSON last.
        facts = ["when", "actor", "action", "resource", "id"]
        if obj is not None and obj.action == ACTION_SWEEP:
            return ["decisions", "summary", *facts, "detail_raw"]
        if obj is not None and obj.action == ACTION_SETTINGS_UPDATE:
            return ["summary", "settings_changes", *facts, "detail_raw"]
        return ["summary", "links", *facts, "detail_raw"]

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

    @admin.display(description="time (UTC)")
    def when(self, entry: AuditLog) -> str:
        return entry.created_at.strftime(TIME_FORMAT) if entry.created_at else "-"

    @admin.display(description="action")
    def action_words(self, entry: AuditLog) -> SafeString | str:
        words = ACTION_WORDS.get(entry.action)
        if words is None:  # an action of the backend's own: its code is all there is
            return entry.action
        return format_html('{} <code class="reason-code">{}</code>', words, entry.action)

    @admin.display(description="resource")
    def resource(self, entry: AuditLog) -> str:
        if entry.resource_type == RESOURCE_ORDER and entry.resource_id is not None:
            url = reverse("admin:recovery_tradeorder_change", args=[entry.resource_id])
            return format_html('<a href="{}">order #{}</a>', url, entry.resource_id)
        if entry.resource_id is None:
            return entry.resource_type
        return f"{entry.resource_type} #{entry.resource_id}"

    @admin.display(description="summary")
    def summary(self, entry: AuditLog) -> SafeString | str:
        return audit_summary(entry)

    @admin.display(description="links")
    def links(self, entry: AuditLog) -> SafeString | str:
        return audit_links(entry)

    @admin.display(description="decisions of this sweep")
    def decisions(self, entry: AuditLog) -> SafeString | str:
        return sweep_decisions(entry)

    @admin.display(description="changes")
    def settings_changes(self, entry: AuditLog) -> SafeString | str:
        return settings_diff(entry)

    @admin.display(description="detail (JSON)")
    def detail_raw(self, entry: AuditLog) -> SafeString:
        return detail_folded(entry)
