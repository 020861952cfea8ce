"""The audit changelist's filters: fixed choices, or choices read from a bounded slice of rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from recovery.db.audit import (
    ACTION_CANCEL,
    ACTION_REPLACE,
    ACTION_SETTINGS_UPDATE,
    ACTION_SWEEP,
    ACTION_WORDS,
    ACTOR_COMMAND,
    RESOURCE_ORDER,
    RESOURCE_SETTINGS,
    RESOURCE_SWEEP,
)
from recovery.db.models import AuditLog, OrderDecision

RESOURCE_TYPES = (RESOURCE_ORDER, RESOURCE_SWEEP, RESOURCE_SETTINGS)
ACTIONS = (ACTION_CANCEL, ACTION_REPLACE, ACTION_SWEEP, ACTION_SETTINGS_UPDATE)
RECENT_ACTORS_ROWS = 2000  # the actor filter lists the actors of this many newest rows


class ActionFilter(admin.SimpleListFilter):
    title, parameter_name = "action", "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(a, f"{ACTION_WORDS[a]} ({a})") for a in ACTIONS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(action=self.value()) if self.value() else queryset


class ResourceTypeFilter(admin.SimpleListFilter):
    title, parameter_name = "resource type", "resource_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(r, r) for r in RESOURCE_TYPES]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(resource_type=self.value()) if self.value() else queryset


class ActorFilter(admin.SimpleListFilter):
    """The kinds of actor, then every actor of the newest rows (a bounded read, not a DISTINCT scan)."""

    title, parameter_name = "actor", "actor_kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        fixed = [
            (ACTOR_COMMAND, "cron (auto_recover)"),
            ("admin", "admin users (all)"),
            ("system", "the backend (system)"),
        ]
        recent = AuditLog.objects.order_by("-id").values_list("actor", flat=True)[:RECENT_ACTORS_ROWS]
        known = {value for value, _ in fixed}
        present = sorted({actor for actor in recent if actor not in known})
        return fixed + [(actor, actor) for actor in present]

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
        sweep_id = detail.get("sweep_id")
        if detail.get("orders_omitted") and isinstance(sweep_id, str):
            # A bounded row lists a few hundred orders: the rest it changed are in the history.
            changed = OrderDecision.objects.filter(last_sweep_id=sweep_id, decision__in=["cancel", "replace"])
            for order_id, replacement_id in changed.values_list("order_id", "replacement_id"):
                order_ids |= {order_id, replacement_id}
        order_ids = sorted(i for i in order_ids if type(i) is int)
        rows = Q(
            resource_type=RESOURCE_ORDER,
            resource_id__in=order_ids,
            action__in=[ACTION_CANCEL, ACTION_REPLACE],
        )
        mine = queryset.filter(Q(pk__in=ids[:1]) | rows)
        # Only rows of this sweep: an order may appear in several sweeps' rows.
        return mine if not sweep_id else mine.filter(Q(pk__in=ids[:1]) | Q(detail__sweep_id=sweep_id))
