"""The Django admin for ops staff: thin ModelAdmins whose actions call the services."""

from recovery.admin import (  # noqa: F401  (registers the ModelAdmins)
    audit,
    orders,
    trade_settings,  # noqa: E402,F401
)
