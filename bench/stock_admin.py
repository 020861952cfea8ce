"""The baseline for (c): stock ModelAdmins as a naive admin would write them, on their own site.

Field list_filters (SELECT DISTINCT for their choices), icontains search, the full
COUNT(*) of the default paginator and show_full_result_count: Django's defaults.
"""

from __future__ import annotations

from django.contrib import admin

from recovery.db.models import AuditLog, TradeOrder

stock_site = admin.AdminSite(name="stock_admin")


class StockTradeOrderAdmin(admin.ModelAdmin):
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
        "created_at",
    )
    list_filter = ("status", "order_type", "side")
    search_fields = ("client_order_id",)
    # The recovery app ships a template for this model's changelist; stock uses stock's.
    change_list_template = "admin/change_list.html"


class StockAuditLogAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "actor", "action", "resource_type", "resource_id")
    list_filter = ("action", "resource_type")
    search_fields = ("action",)
    change_list_template = "admin/change_list.html"


stock_site.register(TradeOrder, StockTradeOrderAdmin)
stock_site.register(AuditLog, StockAuditLogAdmin)
