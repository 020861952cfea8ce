"""Orders: a read-only changelist on trade_orders and the recovery action and button."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from recovery import selectors
from recovery.admin.base import ReadOnlyLargeTableAdmin
from recovery.audit import ACTION_REPLACE, admin_actor
from recovery.chain import chain_root, replacement_client_order_id
from recovery.decisions import ORDER_TYPES, SIDES, chain_attempts
from recovery.models import AuditLog, TradeOrder
from recovery.runs import RunReport, sweep_run_recorded
from recovery.services import sweep_run

STATUSES = ("NEW", "SUBMITTED", "PARTIAL", "FILLED", "CANCELED", "REJECTED", "SKIPPED")
MAX_SELECTED = 500
PERMISSION = "recovery.run_auto_recovery"
MSG_NO_PERMISSION = "You do not have permission to run auto-recovery."
MSG_DONE = (
    "Recovery {sweep}: scanned {scanned}, cancelled {cancelled}, replaced {replaced}, "
    "skipped {skipped}, failed {failed}."
)
MSG_BREAKER = "Circuit breaker open: {count} orders would have been re-placed; nothing was changed."
MSG_TOO_MANY = f"Select at most {MAX_SELECTED} orders at a time."


class _FixedChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices are constants: no SELECT DISTINCT over a million rows."""

    field: str = ""
    values: tuple[str, ...] = ()

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(v, v) for v in self.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(**{self.field: self.value()}) if self.value() else queryset


class StatusFilter(_FixedChoicesFilter):
    title, parameter_name, field, values = "status", "status", "status", STATUSES


class OrderTypeFilter(_FixedChoicesFilter):
    title, parameter_name, field = "order type", "order_type", "order_type"
    values = tuple(sorted(ORDER_TYPES))


class SideFilter(_FixedChoicesFilter):
    title, parameter_name, field, values = "side", "side", "side", tuple(sorted(SIDES))


class StaleNewFilter(admin.SimpleListFilter):
    """NEW orders older than the timeout in force: what the sweep would look at."""

    title, parameter_name = "stale", "stale"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "stale NEW (older than the timeout)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() != "yes":
            return queryset
        timeout = selectors.settings_in_force_get().config.new_timeout_seconds
        cutoff = timezone.now() - dt.timedelta(seconds=timeout)
        return queryset.filter(status="NEW", created_at__lte=cutoff)


class CreatedByRecoveryFilter(admin.SimpleListFilter):
    """Replacements, found through the indexed audit rows rather than by scanning params."""

    title, parameter_name = "created by auto-recovery", "recovery"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "yes")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() != "yes":
            return queryset
        replacements = AuditLog.objects.filter(action=ACTION_REPLACE, resource_type="trade_order")
        return queryset.filter(pk__in=replacements.values("resource_id"))


class OrderChangeList(ChangeList):
    """Looks up the page's replacements in one query, by their deterministic client ids."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        expected = {}
        for order in self.result_list:
            params = order.params if isinstance(order.params, dict) else {}
            attempts = chain_attempts(params)
            if attempts is None:
                continue
            _, root = chain_root(order_id=order.pk, client_order_id=order.client_order_id, params=params)
            expected[replacement_client_order_id(root_client_order_id=root, attempt=attempts + 1)] = order
        found = (
            TradeOrder.objects.filter(client_order_id__in=list(expected)).values_list(
                "client_order_id", "id", "params"
            )
            if expected
            else []
        )
        for client_id, replacement_id, params in found:
            origin = (params or {}).get("auto_recovery", {}) if isinstance(params, dict) else {}
            order = expected[client_id]
            if isinstance(origin, dict) and origin.get("origin_order_id") == order.pk:
                order.replacement_id = replacement_id


def _order_link(order_id: Any) -> str:
    if type(order_id) is not int:
        return "-"
    url = reverse("admin:recovery_tradeorder_change", args=[order_id])
    return format_html('<a href="{}">#{}</a>', url, order_id)


def audit_link(order_ids: list[int], label: str) -> str:
    url = (
        reverse("admin:recovery_auditlog_changelist")
        + "?"
        + urlencode({"resource_ids": ",".join(str(i) for i in order_ids)})
    )
    return format_html('<a href="{}">{}</a>', url, label)


@admin.register(TradeOrder)
class TradeOrderAdmin(ReadOnlyLargeTableAdmin):
    list_display = (
        "id",
        "client_order_id",
        "symbol",
        "side",
        "quantity",
        "order_type",
        "limit_price",
        "status",
        "filled_quantity",
        "age",
        "broker_ids",
        "chain",
    )
    list_filter = (StatusFilter, OrderTypeFilter, SideFilter, StaleNewFilter, CreatedByRecoveryFilter)
    search_help_text = "Exact id, client_order_id or symbol."
    search_fields = ("client_order_id",)  # shows the box; get_search_results does exact, indexed lookups
    sortable_by = ("id",)
    actions = ["recover_selected"]
    readonly_fields = ("chain_detail", "audit_trail")
    change_list_template = "admin/recovery/tradeorder/change_list.html"

    def has_run_auto_recovery_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return OrderChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(client_order_id=term) | Q(symbol=term.upper())
        if term.isdigit():
            match |= Q(pk=int(term))
        return queryset.filter(match), False

    # --- columns ------------------------------------------------------------------------
    @admin.display(description="age")
    def age(self, order: TradeOrder) -> str:
        seconds = int((timezone.now() - order.created_at).total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"

    @admin.display(description="broker ids")
    def broker_ids(self, order: TradeOrder) -> str:
        if order.ib_order_id is None and order.ib_perm_id is None:
            return "-"
        return f"{order.ib_order_id or '-'} / {order.ib_perm_id or '-'}"

    @admin.display(description="recovery chain")
    def chain(self, order: TradeOrder) -> str:
        params = order.params if isinstance(order.params, dict) else {}
        recovery = params.get("auto_recovery") if isinstance(params.get("auto_recovery"), dict) else {}
        parts = []
        if recovery.get("attempts"):
            parts.append(
                format_html(
                    "attempt {} from {}", recovery["attempts"], _order_link(recovery.get("origin_order_id"))
                )
            )
        replacement = getattr(order, "replacement_id", None)
        if replacement:
            parts.append(format_html("→ {}", _order_link(replacement)))
        return format_html_join(" ", "{}", ((p,) for p in parts)) if parts else "-"

    @admin.display(description="recovery chain")
    def chain_detail(self, order: TradeOrder) -> str:
        return self.chain(order)

    @admin.display(description="audit trail")
    def audit_trail(self, order: TradeOrder) -> str:
        root_id, root_client = chain_root(
            order_id=order.pk, client_order_id=order.client_order_id, params=order.params
        )
        candidates = [root_client] + [
            replacement_client_order_id(root_client_order_id=root_client, attempt=a) for a in range(1, 11)
        ]
        chain_ids = sorted(
            {
                root_id,
                order.pk,
                *TradeOrder.objects.filter(client_order_id__in=candidates).values_list("id", flat=True),
            }
        )
        return format_html(
            "{} · {}",
            audit_link([order.pk], "this order's audit entries"),
            audit_link(chain_ids, f"the whole chain's ({len(chain_ids)} orders)"),
        )

    # --- recovery -----------------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.sweep_view)
        return [path("recovery-sweep/", view, name="recovery_tradeorder_sweep"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # A forged POST of the action is a 403, not Django's quiet "no action selected".
        if request.method == "POST" and request.POST.get("action") == "recover_selected":
            if not self.has_run_auto_recovery_permission(request):
                raise PermissionDenied(MSG_NO_PERMISSION)
        context = {
            "can_run_recovery": self.has_run_auto_recovery_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    @admin.action(permissions=["run_auto_recovery"], description="Recover selected stale orders")
    def recover_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        order_ids = list(queryset.order_by().values_list("pk", flat=True)[: MAX_SELECTED + 1])
        if len(order_ids) > MAX_SELECTED:
            self.message_user(request, MSG_TOO_MANY, messages.ERROR)
            return None
        return self._recovery(request, order_ids=order_ids, selected=True)

    def sweep_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_run_auto_recovery_permission(request):
            raise PermissionDenied(MSG_NO_PERMISSION)
        return self._recovery(request, order_ids=None, selected=False)

    def _recovery(self, request: HttpRequest, *, order_ids: list[int] | None, selected: bool) -> HttpResponse:
        actor = admin_actor(request.user.get_username())
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            confirmed = request.POST.get("confirmed_replacements", "")
            report = sweep_run_recorded(
                now=timezone.now(),
                actor=actor,
                order_ids=order_ids,
                confirmed_replacements=int(confirmed) if selected and confirmed.isdigit() else None,
            )
            self._report(request, report)
            return HttpResponseRedirect(reverse("admin:recovery_tradeorder_changelist"))
        preview = sweep_run(now=timezone.now(), actor=actor, dry_run=True, order_ids=order_ids)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Recover selected stale orders" if selected else "Run recovery sweep",
            "preview": preview,
            "report": preview.as_dict(),
            "selected": selected,
            "order_ids": order_ids or [],
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "breaker_can_be_passed": selected and preview.circuit_open,
        }
        return TemplateResponse(request, "admin/recovery/recovery_confirm.html", context)

    def _report(self, request: HttpRequest, report: RunReport) -> None:
        result = report.result
        if result is None:  # could not run: the database said no
            self.message_user(request, report.message, messages.ERROR)
            return
        if result.connection_lost:  # stopped mid-way: the run's own line says what was done
            self.message_user(request, report.message, messages.ERROR)
            return
        text = MSG_DONE.format(sweep=result.sweep_id[:8], **result.counts())
        if result.circuit_open:
            text = MSG_BREAKER.format(count=result.would_replace)
        level = messages.ERROR if result.failed or result.circuit_open else messages.SUCCESS
        if result.audit_id:
            url = reverse("admin:recovery_auditlog_changelist") + "?" + urlencode({"sweep": result.audit_id})
            self.message_user(
                request, format_html('{} <a href="{}">See its audit entries.</a>', text, url), level
            )
        else:
            self.message_user(request, text, level)
