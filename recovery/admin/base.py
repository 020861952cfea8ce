"""Changelists that stay fast on tables of millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.functional import cached_property

COUNT_CAP = 1000


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP rows: a full COUNT(*) of a filtered million-row table scans it.

    show_full_result_count = False alone is not enough: the paginator counts too.
    Past the cap the changelist pages through the first COUNT_CAP rows; filters narrow
    the rest.
    """

    @cached_property
    def count(self) -> int:
        return self.object_list.order_by()[:COUNT_CAP].count()

    @property
    def capped(self) -> bool:
        return self.count >= COUNT_CAP


class ReadOnlyLargeTableAdmin(admin.ModelAdmin):
    """A changelist over a table the backend owns and that holds millions of rows.

    Read only for everyone, superusers included; newest first by primary key; a capped
    count; no facet counts (each is a GROUP BY over the filtered table).
    """

    ordering = ("-id",)
    list_per_page = 100
    paginator = CappedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
