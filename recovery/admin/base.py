"""Changelists that stay fast on tables of millions of rows, and say their counts truly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

# A list that is not counted exactly counts this many pages past the one shown.
PAGES_AHEAD = 10

Counter = Callable[[QuerySet], int]


class CountedPaginator(Paginator):
    """An exact count where an index makes it cheap; elsewhere a count that says it stopped.

    `exact`: counts the filtered rows exactly (the admin passes it for filters an index
    serves, e.g. the stale orders through (status, created_at)). Without it the rows are
    counted up to PAGES_AHEAD pages past `page` (a COUNT(*) over a LIMIT): the unfiltered
    list of a million-row table is not counted on every page, yet every page up to the
    count exists, page 11 shows rows 1,001 to 1,100, and moving on counts further.
    `bounded` says when the count stopped; the page then says "more than".
    """

    def __init__(self, *args: Any, page: int = 1, exact: Counter | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exact = exact
        self.bound = (max(page, 1) + PAGES_AHEAD) * self.per_page

    @cached_property
    def count(self) -> int:
        rows = self.object_list.order_by()
        if self.exact is not None:
            return self.exact(rows)
        # bound + 1 rows: one more page link, to a page that exists.
        return rows[: self.bound + 1].count()

    @property
    def bounded(self) -> bool:
        return self.exact is None and self.count > self.bound


def page_number(request: HttpRequest) -> int:
    value = request.GET.get(PAGE_VAR, "1")
    return int(value) if value.isdigit() else 1


class ReadOnlyLargeTableAdmin(admin.ModelAdmin):
    """A changelist over a table the backend owns and that holds millions of rows.

    Read only for everyone, superusers included; newest first by primary key; counts as
    CountedPaginator gives them (exact where `exact_counter` names a cheap count); no
    facet counts (each is a GROUP BY over the filtered table).
    """

    ordering = ("-id",)
    list_per_page = 100
    paginator = CountedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def exact_counter(self, request: HttpRequest) -> Counter | None:
        """How to count this request's rows exactly, when an index makes it cheap; None: bounded."""
        return None

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> CountedPaginator:
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            page=page_number(request),
            exact=self.exact_counter(request),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
