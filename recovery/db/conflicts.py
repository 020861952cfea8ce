"""What an order is now, in one line, when another writer got to it first (pure)."""

from __future__ import annotations

from typing import Any

MSG_GONE = "the order no longer exists"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def order_now_text(order: Any, *, replacement: Any = None) -> str:
    """`order` and its replacement as read after the conflict (TradeOrder rows, or None).

    E.g. "cancelled by another sweep (sweep 3f2a...), replacement 812 ABC-r1".
    """
    if order is None:
        return MSG_GONE
    params = _object(order.params)
    recovery = _object(params.get("auto_recovery"))
    if order.status == "CANCELED" and params.get("auto_recovery_cancel") is True:
        sweep = recovery.get("sweep_id")
        text = "cancelled by another sweep" + (f" (sweep {sweep})" if sweep else "")
        if replacement is not None:
            return f"{text}, replacement {replacement.pk} {replacement.client_order_id}"
        if recovery.get("last_action") == "replace":
            return f"{text}, its replacement not visible yet"
        return f"{text}, not re-placed ({recovery.get('last_reason') or 'cancel only'})"
    parts = [f"now {order.status}"]
    if order.ib_order_id is not None or order.ib_perm_id is not None:
        parts.append(
            f"acknowledged by the broker (ib_order_id {order.ib_order_id}, ib_perm_id {order.ib_perm_id})"
        )
    if order.filled_quantity:
        parts.append(f"filled {order.filled_quantity:g}")
    return ", ".join(parts)
