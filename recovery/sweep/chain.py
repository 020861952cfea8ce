"""What a cancel and a replacement write into params: the chain keys the backend reads (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from recovery.db.timestamps import iso_utc

CLIENT_ORDER_ID_MAX = 64
# What must not ride along into a replacement: the original's execution state, and every
# key that ties broker evidence to the original (its tags, its events, its positions
# baseline). The backend matches open orders and fills by these, so a replacement that
# carried them would be marked SUBMITTED for the original, or booked the original's fill.
EXECUTION_KEYS = frozenset(
    {
        "submit_command",
        "auto_recovery_cancel",
        "direct_retry",
        "sync_reason",
        "broker_order_tag",
        "event_tag",
        "event_source",
        "positions_baseline",
    }
)
EXECUTION_PREFIXES = ("open_orders_", "event_")


def _object(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def chain_root(*, order_id: int, client_order_id: str, params: Any) -> tuple[int, str]:
    """(root_order_id, root_client_order_id): the original of the whole chain.

    `params` as the column holds it: anything but an object counts as {}.
    """
    recovery = _object(_object(params).get("auto_recovery"))
    root_id, root_client = recovery.get("root_order_id"), recovery.get("root_client_order_id")
    if type(root_id) is int and isinstance(root_client, str) and root_client:
        return root_id, root_client
    return order_id, client_order_id


def replacement_client_order_id(*, root_client_order_id: str, attempt: int) -> str:
    """`<root>-r<attempt>`, the root cut so the suffix always survives in 64 characters."""
    suffix = f"-r{attempt}"
    return root_client_order_id[: CLIENT_ORDER_ID_MAX - len(suffix)] + suffix


def replacement_params(
    *,
    original_params: Any,
    origin_order_id: int,
    origin_client_order_id: str,
    attempt: int,
    now: dt.datetime,
    sweep_id: str,
    placement: tuple[Mapping[str, Any], Mapping[str, Any]],
) -> dict[str, Any]:
    """The replacement's params: the original's without its execution state, the chain
    keys, and `placement` (sweep.placement.placement_params: what hands it to the
    backend's direct-order loop, and what of it goes into the chain keys)."""
    params = {
        key: value
        for key, value in _object(original_params).items()
        if key not in EXECUTION_KEYS and not key.startswith(EXECUTION_PREFIXES)
    }
    placed, chain = placement
    params.update(placed)
    root_id, root_client = chain_root(
        order_id=origin_order_id, client_order_id=origin_client_order_id, params=original_params
    )
    params["auto_recovery"] = {
        "attempts": attempt,
        "origin_order_id": origin_order_id,
        "origin_client_order_id": origin_client_order_id,
        "root_order_id": root_id,
        "root_client_order_id": root_client,
        "triggered_at": iso_utc(now),
        "sweep_id": sweep_id,
        **chain,
    }
    return params


def cancelled_params(
    *, original_params: Any, action: str, reason: str, now: dt.datetime, sweep_id: str
) -> dict[str, Any]:
    """The original's params with the cancel marked; its attempts and root ids stay."""
    params = _object(original_params)
    recovery = _object(params.get("auto_recovery"))
    recovery.update(last_action=action, last_reason=reason, last_at=iso_utc(now), sweep_id=sweep_id)
    params["auto_recovery"] = recovery
    params["auto_recovery_cancel"] = True
    return params
