"""The Django admin for ops staff: thin ModelAdmins whose actions call the services."""

from django.contrib import admin

from recovery.admin import (  # noqa: F401  (registers the ModelAdmins)
    audit,
    history,
    orders,
    trade_settings,  # noqa: E402,F401
)

# The project serves no site beside the admin: Django's "View site" link would lead to a 404.
admin.site.site_url = None
