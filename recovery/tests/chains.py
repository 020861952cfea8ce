"""Recovery chains as the sweep writes them now: an original it cancelled, the replacement it
handed to the backend's direct-order loop, and the replacement's audit row."""

from __future__ import annotations

import datetime as dt
from typing import Any

from recovery.db.audit import ACTION_REPLACE
from recovery.db.models import TradeOrder
from recovery.tests import factories
from recovery.tests.conftest import CLOCK

# direct_retry once the backend's loop sent it (through the bridge or its own executor).
SENT_RETRY = {"pending": False, "count": 1, "last_reason": "submitted", "reason": "auto_recovery"}


def chain(
    root: str,
    *,
    now: dt.datetime = CLOCK,
    original_status: str = "CANCELED",
    status: str = "NEW",
    age: float = 40,
    params: dict[str, Any] | None = None,
    original: dict[str, Any] | None = None,
    **fields: Any,
) -> tuple[TradeOrder, TradeOrder]:
    """An original auto-recovery cancelled and the replacement it wrote `age` seconds before `now`,
    as the sweep writes them now (handed to the backend's direct-order loop), with its audit row."""
    created = now - dt.timedelta(seconds=age + 60)
    first = factories.TradeOrderFactory(
        client_order_id=root,
        status=original_status,
        created_at=created,
        updated_at=now - dt.timedelta(seconds=age),
        params={
            "auto_recovery_cancel": True,
            "auto_recovery": {"last_action": "replace", "last_reason": "replaced"},
        },
        **(original or {}),
    )
    written = now - dt.timedelta(seconds=age)
    replacement_params = {
        "mode": "paper",
        "direct_retry": {"pending": True, "reason": "auto_recovery", "count": 0},
        "auto_recovery": {
            "attempts": 1,
            "origin_order_id": first.pk,
            "origin_client_order_id": root,
            "root_order_id": first.pk,
            "root_client_order_id": root,
            "triggered_at": written.isoformat().replace("+00:00", "Z"),
            "sweep_id": "s-1",
        },
        **(params or {}),
    }
    second = factories.TradeOrderFactory(
        client_order_id=f"{root}-r1",
        status=status,
        created_at=written,
        updated_at=written,
        params=replacement_params,
        **fields,
    )
    factories.AuditLogFactory(
        actor="auto_recover", action=ACTION_REPLACE, resource_id=second.pk, created_at=written
    )
    return first, second


def second_replacement(
    root: TradeOrder, r1: TradeOrder, *, status: str, created_at: dt.datetime, **fields: Any
) -> TradeOrder:
    """The chain's second replacement (`<root>-r2`, attempt 2), sent by the backend's loop."""
    return factories.TradeOrderFactory(
        client_order_id=f"{root.client_order_id}-r2",
        status=status,
        created_at=created_at,
        params={
            "direct_retry": SENT_RETRY,
            "auto_recovery": {
                "attempts": 2,
                "origin_order_id": r1.pk,
                "origin_client_order_id": r1.client_order_id,
                "root_order_id": root.pk,
                "root_client_order_id": root.client_order_id,
            },
        },
        **fields,
    )
