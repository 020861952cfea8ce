"""The orders changelist's filters: fixed choices, indexed lookups, one definition of stale."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from recovery import selectors
from recovery.db.audit import ACTION_REPLACE
from recovery.db.models import AuditLog
from recovery.sweep.decisions import ORDER_TYPES, SIDES

STATUSES = ("NEW", "SUBMITTED", "PARTIAL", "FILLED", "CANCELED", "REJECTED", "SKIPPED")
STALE_YES, STALE_NOT_CANDIDATE = "yes", "left"


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
    """Stale = the sweep's candidates (selectors.stale_candidates), as on the preview and status page.

    Old NEW orders the sweep never touches (acknowledged, partly filled, intent only)
    are a choice of their own, so they are never counted as stale.
    """

    title, parameter_name = "stale", "stale"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (STALE_YES, "stale: the sweep's candidates"),
            (STALE_NOT_CANDIDATE, "old NEW, not candidates (left alone)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in (STALE_YES, STALE_NOT_CANDIDATE):
            return queryset
        timeout = selectors.settings_in_force_get().config.new_timeout_seconds
        now = timezone.now()
        candidates = selectors.stale_candidates(now=now, timeout_seconds=timeout)
        if self.value() == STALE_YES:
            return queryset & candidates
        old_new = queryset.filter(status="NEW", created_at__lte=now - dt.timedelta(seconds=timeout))
        return old_new.exclude(pk__in=candidates.values("pk"))


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
