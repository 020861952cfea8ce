"""The orders admin's recovery: the action and the sweep button, shaped like delete_selected.

The first request shows a dry run (what will happen to each order, then warnings, then
the gates and settings folded); the confirmed POST runs the same service as cron and
returns to the changelist with its filters kept.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from recovery import selectors
from recovery.admin.denied import permission_denied_response
from recovery.admin.fate import (
    decision_rows,
    decisions_differences,
    decisions_key,
    left_alone_rows,
    preview_orders,
    preview_summary,
    preview_warnings,
    settings_rows,
)
from recovery.admin.history import sweep_history_url
from recovery.db.audit import admin_actor
from recovery.ops.runs import RunReport, sweep_run_recorded
from recovery.services import sweep_run
from recovery.sweep.results import SweepResult

MAX_SELECTED = 500
PERMISSION = "recovery.run_auto_recovery"
PERMISSION_NAME = "Can run auto-recovery (recovery.run_auto_recovery)"
MSG_NO_PERMISSION = "You do not have permission to run auto-recovery."
MSG_DONE = (
    "Recovery {sweep}: scanned {scanned}, cancelled {cancelled}, replaced {replaced}, "
    "skipped {skipped}, failed {failed}."
)
MSG_BREAKER = "Circuit breaker open: {count} orders would have been re-placed; nothing was changed."
MSG_TOO_MANY = f"Select at most {MAX_SELECTED} orders at a time."
MSG_TICK_BREAKER = (
    "Nothing was run: tick this box to re-place {count} orders past the circuit breaker, or go back."
)
MSG_DIFFERS = "The run did not do what the confirmation promised for these orders: {lines}."
MSG_LEFT = "Stopped early: {left} left NEW for the next run ({why})."


def _stale_total(preview: SweepResult) -> int:
    """The exact count of stale orders the preview's run would start from (not only those it decides)."""
    return selectors.stale_order_total(now=preview.now, timeout_seconds=preview.settings.new_timeout_seconds)


class RecoveryActionMixin(admin.ModelAdmin):
    def has_run_auto_recovery_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    @admin.action(permissions=["run_auto_recovery"], description="Recover selected stale orders")
    def recover_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        order_ids = list(queryset.order_by().values_list("pk", flat=True)[: MAX_SELECTED + 1])
        if len(order_ids) > MAX_SELECTED:
            self.message_user(request, MSG_TOO_MANY, messages.ERROR)
            return None
        return self._recovery(request, order_ids=order_ids, selected=True)

    def sweep_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_run_auto_recovery_permission(request):
            return permission_denied_response(request, permission=PERMISSION_NAME, reason=MSG_NO_PERMISSION)
        return self._recovery(request, order_ids=None, selected=False)

    def _changelist_url(self, request: HttpRequest) -> str:
        url = reverse("admin:recovery_tradeorder_changelist")
        context = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
        return add_preserved_filters(context, url)

    def _recovery(self, request: HttpRequest, *, order_ids: list[int] | None, selected: bool) -> HttpResponse:
        actor = admin_actor(request.user.get_username())
        confirmed = request.POST.get("confirmed_replacements", "")
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            preview = None
            if selected and not confirmed.isdigit():
                # The breaker would hold: ask at the checkbox instead of running a sweep that opens it.
                preview = sweep_run(now=timezone.now(), actor=actor, dry_run=True, order_ids=order_ids)
            if preview is None or not preview.circuit_open:
                report = sweep_run_recorded(
                    now=timezone.now(),
                    actor=actor,
                    order_ids=order_ids,
                    confirmed_replacements=int(confirmed) if selected and confirmed.isdigit() else None,
                    max_seconds=settings.RECOVERY_API_MAX_SECONDS,  # a web request, like the API's
                )
                self._report(request, report, shown=request.POST.get("shown_decisions"))
                # The action posted to the changelist's own URL, filters and all (delete_selected).
                back = request.get_full_path() if selected else self._changelist_url(request)
                return HttpResponseRedirect(back)
            return self._preview_page(
                request, preview, order_ids=order_ids, selected=selected, tick_error=True
            )
        preview = sweep_run(now=timezone.now(), actor=actor, dry_run=True, order_ids=order_ids)
        return self._preview_page(request, preview, order_ids=order_ids, selected=selected)

    def _preview_page(
        self,
        request: HttpRequest,
        preview: SweepResult,
        *,
        order_ids: list[int] | None,
        selected: bool,
        tick_error: bool = False,
    ) -> HttpResponse:
        report = preview.as_dict()
        can_pass = selected and preview.circuit_open
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Recover selected stale orders" if selected else "Run recovery sweep",
            "preview": preview,
            "report": report,
            "rows": decision_rows(report, orders=preview_orders(preview)),
            "left_alone": left_alone_rows(report),
            "warnings": preview_warnings(report),
            "summary": preview_summary(report, stale_total=None if selected else _stale_total(preview)),
            "settings_rows": settings_rows(report),
            "shown_decisions": decisions_key(report["orders"]),
            "selected": selected,
            "order_ids": order_ids or [],
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "breaker_can_be_passed": can_pass,
            "tick_error": MSG_TICK_BREAKER.format(count=preview.would_replace) if tick_error else "",
            # Nothing to run, or a breaker nobody may pass here: the button stays off.
            "confirm_disabled": not preview.scanned or (preview.circuit_open and not can_pass),
            "changelist_url": self._changelist_url(request),
            "preserved_filters": self.get_preserved_filters(request),
        }
        return TemplateResponse(request, "admin/recovery/recovery_confirm.html", context)

    def _report(self, request: HttpRequest, report: RunReport, *, shown: str | None) -> None:
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
        differences = decisions_differences(shown, result) if shown is not None else []
        level = messages.ERROR if result.failed or result.circuit_open else messages.SUCCESS
        if (differences or result.out_of_time) and level == messages.SUCCESS:
            level = messages.WARNING
        parts = [format_html("{}", text)]
        if result.out_of_time:
            left = result.left_for_next_run
            orders = f"{left:,} order{'s' if left != 1 else ''}"
            parts.append(format_html(MSG_LEFT, left=orders, why=result.out_of_time))
        if differences:
            parts.append(format_html(MSG_DIFFERS, lines="; ".join(differences)))
        if result.audit_id:
            url = reverse("admin:recovery_auditlog_changelist") + "?" + urlencode({"sweep": result.audit_id})
            parts.append(format_html('<a href="{}">See its audit entries.</a>', url))
        if result.orders:
            history = sweep_history_url(result.sweep_id)
            parts.append(format_html('<a href="{}">Each order\'s decision, skips too.</a>', history))
        self.message_user(request, format_html_join(" ", "{}", ((p,) for p in parts)), level)
