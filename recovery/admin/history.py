"""Each order's decision history (OrderDecision): its own read-only list, links to it, and
the section of the order's page that shows it.

Every place that shows an order's fate links here with history_link(); the list filtered
by one order (`?order_id=`) reads the (order_id, last_at) index, by one sweep
(`?sweep=`) the last_sweep_id index.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from recovery.admin.base import ReadOnlyLargeTableAdmin
from recovery.db.models import OrderDecision, TradeOrder
from recovery.sweep.labels import reason_label

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ON_ORDER_PAGE = 10  # rows the order's page shows; the rest one click away
HISTORY_LABEL = "decision history"


def history_url(order_id: int) -> str:
    return reverse("admin:recovery_orderdecision_changelist") + "?" + urlencode({"order_id": order_id})


def sweep_history_url(sweep_id: str) -> str:
    return reverse("admin:recovery_orderdecision_changelist") + "?" + urlencode({"sweep": sweep_id})


def history_link(order_id: Any, label: str = HISTORY_LABEL) -> SafeString | str:
    """The link every page that shows an order's fate puts beside it."""
    if type(order_id) is not int:
        return ""
    return format_html('<a class="history-link" href="{}">{}</a>', history_url(order_id), label)


def fate_history_html(order_id: Any) -> SafeString | str:
    """The orders list's fate column: what the sweeps did before, one click away."""
    link = history_link(order_id, "history")
    return format_html('<br><small class="fate-history">{}</small>', link) if link else ""


def decision_label(row: OrderDecision) -> str:
    """The decision in words, as the sweep's pages say it (the code is shown beside it)."""
    return reason_label({"decision": row.decision, "reason": row.reason, "detail": row.detail or None})


def _when(moment: Any) -> str:
    return moment.strftime(TIME_FORMAT) if moment else "-"


def sweep_ref(sweep_id: str, audit_id: int | None) -> SafeString:
    """The sweep's audit row when it wrote one, else its other decisions in the history."""
    short = sweep_id[:8]
    if audit_id is not None:
        url = reverse("admin:recovery_auditlog_change", args=[audit_id])
        return format_html('<a href="{}" title="audit entry #{}">sweep {}</a>', url, audit_id, short)
    return format_html(
        '<a href="{}" title="this sweep\'s decisions">sweep {}</a>', sweep_history_url(sweep_id), short
    )


def _row_html(row: OrderDecision) -> SafeString:
    return format_html(
        '<tr><td data-label="what the sweep did">{} <code class="reason-code">{}</code></td>'
        '<td data-label="last">{}<br><small>{}</small></td>'
        '<td data-label="first">{}<br><small>{}</small></td><td data-label="sweeps">{}</td></tr>',
        decision_label(row),
        row.reason,
        _when(row.last_at),
        sweep_ref(row.last_sweep_id, row.last_audit_id),
        _when(row.first_at),
        sweep_ref(row.first_sweep_id, row.first_audit_id),
        row.times,
    )


def order_history_html(order_id: int) -> SafeString:
    """The order page's section: the newest pairs first, the whole list one click away."""
    rows = list(
        OrderDecision.objects.filter(order_id=order_id).order_by("-last_at", "-id")[: ON_ORDER_PAGE + 1]
    )
    if not rows:
        return format_html(
            "No sweep has decided on this order yet (kept {} days). {}",
            _retention_days(),
            history_link(order_id, "Open its decision history"),
        )
    more = format_html(" {}", history_link(order_id, "All of them")) if len(rows) > ON_ORDER_PAGE else ""
    return format_html(
        '<div class="table-scroll"><table class="order-history decision-cards">'
        "<thead><tr><th>what the sweep did (UTC)</th><th>last given</th><th>first given</th>"
        "<th>sweeps</th></tr></thead><tbody>{}</tbody></table></div>"
        '<p class="history-more">{}{}</p>',
        format_html_join("", "{}", ((_row_html(r),) for r in rows[:ON_ORDER_PAGE])),
        history_link(order_id, "Open its decision history"),
        more,
    )


def _retention_days() -> int:
    return int(settings.RECOVERY_HISTORY_RETENTION_DAYS)


class OrderFilter(admin.SimpleListFilter):
    title, parameter_name = "order", "order_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"#{value}")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        if not value:
            return queryset
        return queryset.filter(order_id=int(value)) if value.isdigit() else queryset.none()


class SweepFilter(admin.SimpleListFilter):
    """The orders one sweep decided on (as long as no later sweep gave them the same pair)."""

    title, parameter_name = "sweep", "sweep"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value[:8])] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = (self.value() or "").strip()
        return queryset.filter(last_sweep_id=value) if value else queryset


class DecisionFilter(admin.SimpleListFilter):
    title, parameter_name = "what the sweep did", "decision"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("skip", "left alone"), ("cancel", "cancelled only"), ("replace", "cancelled and re-placed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(decision=self.value()) if self.value() else queryset


@admin.register(OrderDecision)
class OrderDecisionAdmin(ReadOnlyLargeTableAdmin):
    list_display = ("last_given", "order", "what", "first_given", "times")
    list_display_links = None
    list_filter = (OrderFilter, SweepFilter, DecisionFilter)
    ordering = ("-last_at", "-id")
    sortable_by = ()
    search_fields = ("client_order_id",)  # the box; get_search_results does exact, indexed lookups
    search_help_text = "Exact order id or client_order_id."

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(order_id=int(term)), False
        ids = list(TradeOrder.objects.filter(client_order_id=term).values_list("id", flat=True)[:1])
        return queryset.filter(order_id__in=ids), False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Who may see the orders may see what the sweeps decided on them.
        return super().has_view_permission(request, obj) or request.user.has_perm("recovery.view_tradeorder")

    @admin.display(description="last given (UTC)")
    def last_given(self, row: OrderDecision) -> SafeString:
        return format_html(
            "{}<br><small>{}</small>", _when(row.last_at), sweep_ref(row.last_sweep_id, row.last_audit_id)
        )

    @admin.display(description="order")
    def order(self, row: OrderDecision) -> SafeString:
        url = reverse("admin:recovery_tradeorder_change", args=[row.order_id])
        return format_html(
            '<a href="{}">#{}</a><br><small class="client-id">{}</small>',
            url,
            row.order_id,
            row.client_order_id,
        )

    @admin.display(description="what the sweep did")
    def what(self, row: OrderDecision) -> SafeString:
        replacement = ""
        if row.replacement_id is not None:
            url = reverse("admin:recovery_tradeorder_change", args=[row.replacement_id])
            replacement = format_html(' → <a href="{}">#{}</a>', url, row.replacement_id)
        return format_html(
            '<span class="fate fate-{}">{}</span> <code class="reason-code">{}</code>{}',
            row.decision,
            decision_label(row),
            row.reason,
            replacement,
        )

    @admin.display(description="first given (UTC)")
    def first_given(self, row: OrderDecision) -> SafeString:
        return format_html(
            "{}<br><small>{}</small>", _when(row.first_at), sweep_ref(row.first_sweep_id, row.first_audit_id)
        )

    @admin.display(description="sweeps")
    def times(self, row: OrderDecision) -> int:
        return row.times
