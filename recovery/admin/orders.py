"""Orders: a read-only changelist on trade_orders that says what the sweep would do.

Columns fit a 1366 px screen with the navigation sidebar open: the order in one
column (symbol, side, quantity, type, limit), its status with broker ids and fills,
created-at (sortable) with its age, what the sweep would do with it (one dry run per
page, gates gathered once), and the recovery chain as links both ways.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from recovery import selectors
from recovery.admin.base import Counter, ReadOnlyLargeTableAdmin
from recovery.admin.chain import chain_html, chains_attach, pickup_html
from recovery.admin.denied import permission_denied_response
from recovery.admin.fate import Fate, page_fates
from recovery.admin.history import fate_history_html, history_link, order_history_html
from recovery.admin.order_filters import (
    STALE_NOT_CANDIDATE,
    STALE_YES,
    CreatedByRecoveryFilter,
    OrderTypeFilter,
    SideFilter,
    StaleNewFilter,
    StatusFilter,
)
from recovery.admin.order_recovery import MSG_NO_PERMISSION, PERMISSION_NAME, RecoveryActionMixin
from recovery.db.audit import admin_actor
from recovery.db.models import TradeOrder
from recovery.sweep.chain import chain_root, replacement_client_order_id
from recovery.sweep.labels import age_text, reason_label


class OrderChangeList(ChangeList):
    """Adds to each order of the page its chain (one query) and its fate (one dry run)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        now = timezone.now()
        chains_attach(self.result_list, now=now)
        self.fates = page_fates(self.result_list, now=now, actor=admin_actor(request.user.get_username()))
        for order in self.result_list:
            order.fate = self.fates.get(order.pk)


def _chain_of(order: TradeOrder) -> Any:
    """The order's chain, read once per page (the order page's fields share the instance)."""
    if not hasattr(order, "chain"):
        chains_attach([order], now=timezone.now())
    return order.chain


def audit_link(order_ids: list[int], label: str) -> str:
    url = (
        reverse("admin:recovery_auditlog_changelist")
        + "?"
        + urlencode({"resource_ids": ",".join(str(i) for i in order_ids)})
    )
    return format_html('<a href="{}">{}</a>', url, label)


def _fate_html(fate: Fate | None) -> SafeString | str:
    if fate is None:
        return "-"
    return format_html(
        '<span class="fate fate-{}">{}</span> <code class="reason-code">{}</code>',
        fate.action,
        fate.label,
        fate.code,
    )


@admin.register(TradeOrder)
class TradeOrderAdmin(RecoveryActionMixin, ReadOnlyLargeTableAdmin):
    # The answer next to the id: on a phone the first two columns are what shows.
    list_display = ("order_ref", "sweep_would", "order", "state", "created", "chain")
    list_display_links = ("order_ref",)
    list_filter = (StatusFilter, OrderTypeFilter, SideFilter, StaleNewFilter, CreatedByRecoveryFilter)
    search_help_text = "Exact id, client_order_id or symbol."
    search_fields = ("client_order_id",)  # shows the box; get_search_results does exact, indexed lookups
    sortable_by = ("order_ref", "created")
    actions = ["recover_selected"]
    fields = (
        "id",
        "client_order_id",
        "order",
        "state",
        "created",
        "updated_at",
        "last_status_ts",
        "run_id",
        "rejected_reason",
        "fate_detail",
        "decision_history",
        "chain_detail",
        "audit_trail",
        "params_pretty",
    )
    readonly_fields = fields
    change_list_template = "admin/recovery/tradeorder/change_list.html"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return OrderChangeList

    @staticmethod
    def _new_only(request: HttpRequest) -> bool:
        """Whether the list holds NEW orders only: the stale filter (either choice) or status NEW."""
        stale = request.GET.get(StaleNewFilter.parameter_name) in (STALE_YES, STALE_NOT_CANDIDATE)
        return stale or request.GET.get(StatusFilter.parameter_name) == "NEW"

    def exact_counter(self, request: HttpRequest) -> Counter | None:
        """NEW orders are counted exactly: the (status, created_at) index serves the count.
        Other lists count a few pages ahead (CountedPaginator)."""
        return selectors.new_orders_count if self._new_only(request) else None

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        """NEW orders newest first by creation, in the (status, created_at) index's own order.

        By id, MariaDB walks the primary key backwards until it has a page of them: behind a
        million newer orders, old stale ones cost seconds a page; by created_at it reads the
        index's NEW range from its end, a page's worth (plus the offset) and no more.
        """
        return ("-created_at", "-id") if self._new_only(request) else self.ordering

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
    @admin.display(description="id / client_order_id", ordering="id")
    def order_ref(self, order: TradeOrder) -> SafeString:
        return format_html('#{}<br><small class="client-id">{}</small>', order.pk, order.client_order_id)

    @admin.display(description="order")
    def order(self, order: TradeOrder) -> str:
        limit = f" @ {order.limit_price:g}" if isinstance(order.limit_price, float) else ""
        quantity = f"{order.quantity:g}" if isinstance(order.quantity, float) else str(order.quantity)
        return f"{order.symbol} {order.side} {quantity} {order.order_type}{limit}"

    @admin.display(description="status")
    def state(self, order: TradeOrder) -> SafeString:
        extra = []
        if order.ib_order_id is not None or order.ib_perm_id is not None:
            extra.append(f"broker {order.ib_order_id or '-'} / {order.ib_perm_id or '-'}")
        if order.filled_quantity:
            extra.append(f"filled {order.filled_quantity:g}")
        return format_html(
            "{}{}", order.status, format_html_join("", "<br><small>{}</small>", ((e,) for e in extra))
        )

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, order: TradeOrder) -> SafeString:
        age = age_text((timezone.now() - order.created_at).total_seconds())
        return format_html(
            '<span class="moment">{}</span> <span class="moment">{}</span> <small class="age">{} ago</small>',
            f"{order.created_at:%Y-%m-%d}",
            f"{order.created_at:%H:%M:%S}",
            age,
        )

    @admin.display(description="sweep would")
    def sweep_would(self, order: TradeOrder) -> SafeString | str:
        return format_html("{}{}", _fate_html(getattr(order, "fate", None)), fate_history_html(order.pk))

    @admin.display(description="chain")
    def chain(self, order: TradeOrder) -> SafeString | str:
        return chain_html(_chain_of(order), detail=False)

    # --- the order's page -----------------------------------------------------------------
    @admin.display(description="what the sweep would do now")
    def fate_detail(self, order: TradeOrder) -> SafeString | str:
        return format_html("{} · {}", self._fate_now(order), history_link(order.pk, "what the sweeps did"))

    @admin.display(description="decision history")
    def decision_history(self, order: TradeOrder) -> SafeString:
        return order_history_html(order.pk)

    def _fate_now(self, order: TradeOrder) -> SafeString | str:
        if order.status == "NEW":
            fates = page_fates([order], now=timezone.now(), actor="admin")
            return _fate_html(fates.get(order.pk))
        params = order.params if isinstance(order.params, dict) else {}
        recovery = params.get("auto_recovery") if isinstance(params.get("auto_recovery"), dict) else {}
        reason = recovery.get("last_reason")
        if params.get("auto_recovery_cancel") and isinstance(reason, str):
            label = reason_label({"reason": reason, "attempt": recovery.get("attempts", 0)})
            return format_html(
                'Nothing: it is {}. Auto-recovery cancelled it: {} <code class="reason-code">{}</code>',
                order.status,
                label,
                reason,
            )
        return f"Nothing: it is {order.status}, not NEW."

    @admin.display(description="recovery chain")
    def chain_detail(self, order: TradeOrder) -> SafeString | str:
        return chain_html(_chain_of(order), detail=True)

    @admin.display(description="picked up by the backend")
    def backend_pickup(self, order: TradeOrder) -> SafeString | str:
        pickup = _chain_of(order).pickup
        return pickup_html(pickup, code=True) if pickup is not None else "-"

    def get_fields(self, request: HttpRequest, obj: TradeOrder | None = None) -> Any:
        """A replacement's page says first how far the backend got with it."""
        fields = list(super().get_fields(request, obj))
        if obj is not None and _chain_of(obj).is_replacement:
            fields.insert(fields.index("state") + 1, "backend_pickup")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: TradeOrder | None = None) -> Any:
        return (*self.readonly_fields, "backend_pickup")

    def render_change_form(
        self, request: HttpRequest, context: dict, add: bool = False, change: bool = False, **kwargs: Any
    ) -> HttpResponse:
        """A double is an incident: it heads the order's page, in words."""
        obj = kwargs.get("obj")
        if obj is not None:
            context["double"] = _chain_of(obj).double
        return super().render_change_form(request, context, add=add, change=change, **kwargs)

    @admin.display(description="params")
    def params_pretty(self, order: TradeOrder) -> SafeString:
        text = json.dumps(order.params, indent=2, sort_keys=True, default=str, ensure_ascii=False)
        return format_html('<pre class="json-block">{}</pre>', text)

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
        own = audit_link([order.pk], "this order's audit entries")
        if len(chain_ids) == 1:  # no chain: the order's own entries are the whole chain's
            return own
        return format_html(
            "{} · {} · {}",
            own,
            audit_link(chain_ids, f"the whole chain's ({len(chain_ids)} orders)"),
            history_link(order.pk, "its decision history (skips too)"),
        )

    # --- recovery -----------------------------------------------------------------------
    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view(self.sweep_view)
        return [path("recovery-sweep/", view, name="recovery_tradeorder_sweep"), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        # A forged POST of the action is a 403, not Django's quiet "no action selected".
        if request.method == "POST" and request.POST.get("action") == "recover_selected":
            if not self.has_run_auto_recovery_permission(request):
                return permission_denied_response(
                    request, permission=PERMISSION_NAME, reason=MSG_NO_PERMISSION
                )
        context = {
            "can_run_recovery": self.has_run_auto_recovery_permission(request),
            "preserved_filters_query": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)
