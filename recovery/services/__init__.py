"""Writes. The sweep (sweep.py), one order's recovery (order.py), the settings page (settings.py)."""

from recovery.services.order import order_cancel_conditional, order_recover
from recovery.services.sweep import sweep_run, sweep_run_exclusive

__all__ = ["order_cancel_conditional", "order_recover", "sweep_run", "sweep_run_exclusive"]
