"""Eleven stale NEW orders laid out as the backend's files would show them.

Eight the broker may have (its own files say so), two it never had, and one it closed
without a fill (Submitted, CancelPending, Canceled: how a cancel at the broker looks); used
by the end-to-end tests (in-process and through `manage.py auto_recover`).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from recovery.db.models import TradeOrder
from recovery.db.timestamps import iso_utc
from recovery.tests import factories

# name -> the reason the sweep must give (None: recovered)
SEEN = {
    "run_snapshot": "open_at_broker",
    "run_submitted": "seen_by_broker",
    "run_filled": "seen_by_broker",
    "direct_submitted": "seen_by_broker",
    "root_submitted": "seen_by_broker",
    "broker_tag_listed": "open_at_broker",
    "command_unexpired": "submit_in_flight",
    "command_submitted": "seen_by_broker",
}
RECOVERED = ("no_evidence", "command_rejected")  # cancelled and re-placed
CLOSED = ("broker_cancelled",)  # cancelled here too (rule 5b), not re-placed


def _line(tag: str, status: str, at: dt.datetime, filled: float = 0) -> str:
    return json.dumps(
        {
            "tag": tag,
            "status": status,
            "order_id": 7,
            "filled": filled,
            "fill_price": 0,
            "time": iso_utc(at),
            "symbol": "AAPL",
            "direction": "Buy",
            "exec_id": "",
            "message": "",
        }
    )


def evidence_cases_build(
    *, root: Path, now: dt.datetime, backend_prefix: str | None = None
) -> dict[str, TradeOrder]:
    """The orders (created two minutes before `now`) and their files under `root`.

    The run's output folder is `root/run_1`; with `backend_prefix` the run names it by the
    backend's path instead (the host maps it back with BRIDGE_PATH_MAP).
    """
    created = now - dt.timedelta(minutes=2)
    run_dir = root / "run_1"
    run_dir.mkdir(parents=True, exist_ok=True)
    named = f"{backend_prefix}/run_1" if backend_prefix else str(run_dir)
    run = factories.TradeRunFactory(project_id=1, params={"lean_execution": {"output_dir": named}})
    orders: dict[str, TradeOrder] = {}

    def order(name: str, *, run_id: int | None = run.pk, **fields: Any) -> TradeOrder:
        fields.setdefault("params", {})
        made = factories.TradeOrderFactory(
            client_order_id=f"ev-{name}", run_id=run_id, created_at=created, updated_at=created, **fields
        )
        orders[name] = made
        return made

    order("run_snapshot")
    order("run_submitted")
    order("run_filled")
    direct = order("direct_submitted", run_id=None)
    order("root_submitted", run_id=None)
    order("broker_tag_listed", params={"broker_order_tag": "bt-777"})
    requested = now - dt.timedelta(seconds=60)  # older than the 45 s timeout, before its 120 s expiry
    # The command orders belong to the ended run: a direct order with a pending leader command
    # is the backend's direct-order loop's (rule 3b), whatever its files say.
    order(
        "command_unexpired",
        params={
            "submit_command": {
                "pending": True,
                "command_id": "submit_order_unexpired",
                "requested_at": iso_utc(requested),
                "expires_at": iso_utc(requested + dt.timedelta(seconds=120)),
                "source": "leader_command",
            }
        },
    )
    for name, status in (("command_submitted", "submitted"), ("command_rejected", "not_connected")):
        order(
            name,
            params={
                "submit_command": {
                    "pending": True,
                    "command_id": f"submit_order_{name}",
                    "requested_at": iso_utc(requested),
                    "expires_at": iso_utc(requested + dt.timedelta(seconds=120)),
                    "source": "leader_command",
                }
            },
        )
        results = root / "command_results"
        results.mkdir(exist_ok=True)
        (results / f"submit_order_{name}.json").write_text(json.dumps({"status": status}))
    order("no_evidence")
    order("broker_cancelled")

    seen_at = created + dt.timedelta(seconds=5)
    snapshot = {"items": [{"tag": "ev-run_snapshot"}], "stale": False, "refreshed_at": iso_utc(now)}
    (run_dir / "open_orders.json").write_text(json.dumps(snapshot))
    (run_dir / "execution_events.jsonl").write_text(
        "\n".join(
            [
                _line("ev-run_submitted", "Submitted", seen_at),
                _line("ev-run_filled", "Submitted", seen_at),
                _line("ev-run_filled", "Filled", seen_at, filled=10),
                _line("ev-broker_cancelled", "Submitted", seen_at),
                _line("ev-broker_cancelled", "CancelPending", seen_at + dt.timedelta(seconds=1)),
                _line("ev-broker_cancelled", "Canceled", seen_at + dt.timedelta(seconds=2)),
            ]
        )
        + "\n"
    )
    direct_dir = root / f"direct_{direct.pk}"
    direct_dir.mkdir()
    (direct_dir / "execution_events.jsonl").write_text(
        _line(f"direct:{direct.pk}", "Submitted", seen_at) + "\n"
    )
    (root / "execution_events.jsonl").write_text(_line("ev-root_submitted", "Submitted", seen_at) + "\n")
    root_snapshot = {"items": [{"tag": "bt-777"}], "stale": False, "refreshed_at": iso_utc(now)}
    (root / "open_orders.json").write_text(json.dumps(root_snapshot))
    return orders
