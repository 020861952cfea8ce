"""Property tests: no combination of broker evidence files makes the sweep raise, or cancel an
order the files show the broker has (missing, empty, truncated, huge, wrong types, stale)."""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, Phase, event, example, given, seed, settings
from hypothesis import strategies as st

from recovery.db.models import TradeOrder
from recovery.db.routers import trading_alias
from recovery.db.timestamps import iso_utc
from recovery.gates.evidence import SEEN_STATUSES, order_tags, submit_command_get
from recovery.gates.evidence_read import EvidenceRequest, evidence_gather
from recovery.selectors import order_snapshot
from recovery.services import sweep_run
from recovery.sweep.config import AutoRecoveryConfig
from recovery.sweep.decisions import Action, GateState, decide
from recovery.tests import factories
from recovery.tests.conftest import CLOCK
from recovery.tests.test_proof_bad_input import PROOF, SEED

NOW = CLOCK
CREATED = NOW - dt.timedelta(minutes=3)
CLIENT = "ev-order-1"
ORDER_ID = 4242
TAGS = order_tags(order_id=ORDER_ID, client_order_id=CLIENT, params={"broker_order_tag": "bt-1"})
COMMAND_ID = "submit_order_4242_1"

# --- what the files may hold -------------------------------------------------------------

STATUSES = st.sampled_from(
    ["Submitted", "Filled", "New", "PartiallyFilled", "CancelPending", "PendingCancel", "Partial"]
    + ["Canceled", "Cancelled", "Invalid", "Rejected", "", "UpdateSubmitted", "weird", " filled "]
) | st.sampled_from([5, None, True, ["Filled"]])
FILLS = st.sampled_from([0, 0.0, 3, -2, 0.5, "1", "0", "x", None, True, False, 1e308, 10**400])
TIMES = st.sampled_from(
    [
        iso_utc(CREATED + dt.timedelta(seconds=5)),
        iso_utc(NOW),
        "2026-11-24T15:59:00.1234567Z",
        "yesterday",
        None,
        7,
    ]
)
TAG_VALUES = st.sampled_from(
    [CLIENT, "bt-1", f"direct:{ORDER_ID}", f" {CLIENT} ", "other", "direct:1", "", None, 5]
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, values in (("tag", TAG_VALUES), ("status", STATUSES), ("filled", FILLS), ("time", TIMES)):
        if draw(st.integers(0, 7)):  # now and then a key is missing
            body[key] = draw(values)
    return body


def dumped(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True, default=str).encode()


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["event", "event", "event", "garbage", "truncated", "huge", "list", "blank"]))
    if kind == "event":
        return dumped(draw(events()))
    if kind == "garbage":
        return draw(st.binary(max_size=40)).replace(b"\n", b" ")
    if kind == "truncated":
        text = dumped(draw(events()))
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "huge":
        return dumped({**draw(events()), "message": "x" * 300_000})
    if kind == "list":
        return dumped([draw(events())])
    return b""


@st.composite
def event_files(draw: st.DrawFn) -> bytes | None:
    """None: no file. Otherwise JSON lines, the last one perhaps still being written."""
    if draw(st.integers(0, 4)) == 0:
        return None
    body = b"\n".join(draw(st.lists(lines(), max_size=6)))
    return body + (b"\n" if draw(st.booleans()) else b"")


@st.composite
def snapshots(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.sampled_from(["none", "fresh", "fresh", "stale", "old", "no_stamp", "broken", "odd"]))
    if kind == "none":
        return None
    if kind == "broken":
        return draw(st.binary(max_size=30))
    items = draw(st.lists(st.fixed_dictionaries({"tag": TAG_VALUES}), max_size=3))
    payload: dict[str, Any] = {"items": items, "stale": kind == "stale", "refreshed_at": iso_utc(NOW)}
    if kind == "old":
        payload["refreshed_at"] = iso_utc(NOW - dt.timedelta(hours=1))
    if kind == "no_stamp":
        del payload["refreshed_at"]
    if kind == "odd":
        payload = draw(st.sampled_from([{"items": 5}, [items], {"items": items, "stale": "no"}]))
    return dumped(payload)


RESULTS = st.none() | st.sampled_from(
    [
        b'{"status": "submitted"}',
        b'{"status": "not_connected"}',
        b'{"status": "received"}',
        b"{",
        b"[]",
        b"{}",
    ]
)


@dataclass(frozen=True)
class Layout:
    root_events: bytes | None
    run_events: bytes | None
    direct_events: bytes | None
    root_snapshot: bytes | None
    run_snapshot: bytes | None
    result: bytes | None
    with_run: bool
    with_command: bool


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    return Layout(
        root_events=draw(event_files()),
        run_events=draw(event_files()),
        direct_events=draw(event_files()),
        root_snapshot=draw(snapshots()),
        run_snapshot=draw(snapshots()),
        result=draw(RESULTS),
        with_run=draw(st.booleans()),
        with_command=draw(st.booleans()),
    )


def layout_write(root: Path, layout: Layout, *, order_id: int) -> Path:
    run_dir = root / "run_1"
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {
        root / "execution_events.jsonl": layout.root_events,
        run_dir / "execution_events.jsonl": layout.run_events if layout.with_run else None,
        root / f"direct_{order_id}" / "execution_events.jsonl": None
        if layout.with_run
        else layout.direct_events,
        root / "open_orders.json": layout.root_snapshot,
        run_dir / "open_orders.json": layout.run_snapshot if layout.with_run else None,
        root / "command_results" / f"{COMMAND_ID}.json": layout.result,
    }
    for path, content in files.items():
        if content is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    return run_dir


# --- the oracle: docs/design.md's words, independent of the code ------------------------------


def line_shows_seen(raw: bytes, tags: frozenset[str]) -> bool:
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    if not isinstance(parsed, dict) or not isinstance(parsed.get("tag"), str):
        return False
    if parsed["tag"].strip() not in tags:
        return False
    status, filled = parsed.get("status"), parsed.get("filled")
    working = isinstance(status, str) and status.strip().upper() in SEEN_STATUSES
    nonzero = isinstance(filled, int | float) and not isinstance(filled, bool) and filled != 0
    return working or (nonzero and not (isinstance(filled, float) and math.isnan(filled)))


def snapshot_lists(raw: bytes | None, tags: frozenset[str]) -> bool:
    try:
        payload = json.loads(raw) if raw is not None else None
    except ValueError:
        return False
    if not isinstance(payload, dict) or payload.get("stale") is not False or "refreshed_at" not in payload:
        return False
    if payload["refreshed_at"] != iso_utc(NOW) or not isinstance(payload.get("items"), list):
        return False
    listed = {
        i.get("tag").strip()
        for i in payload["items"]
        if isinstance(i, dict) and isinstance(i.get("tag"), str)
    }
    return bool(listed & tags)


def shows_seen(layout: Layout, tags: frozenset[str]) -> bool:
    files = [layout.root_events, layout.run_events if layout.with_run else layout.direct_events]
    if any(line_shows_seen(line, tags) for content in files if content for line in content.split(b"\n")):
        return True
    snapshots_ = [layout.root_snapshot, layout.run_snapshot if layout.with_run else None]
    if any(snapshot_lists(s, tags) for s in snapshots_):
        return True
    return layout.with_command and layout.result == b'{"status": "submitted"}'


def params_for(layout: Layout) -> dict[str, Any]:
    params: dict[str, Any] = {"broker_order_tag": "bt-1"}
    if layout.with_command:
        # Expired: only the result (or other evidence) can say the broker has it.
        params["submit_command"] = {
            "pending": True,
            "command_id": COMMAND_ID,
            "requested_at": iso_utc(CREATED),
            "expires_at": iso_utc(CREATED + dt.timedelta(seconds=120)),
        }
    return params


# --- pure: the gathering and the decision ------------------------------------------------


@settings(PROOF, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@seed(SEED)
@given(layout=layouts())
@example(
    layout=Layout(
        root_events=b'{"tag": "ev-order-1", "status": "Filled", "filled": 10}\n{"tag": "ev-order-1", "sta',
        run_events=None,
        direct_events=None,
        root_snapshot=None,
        run_snapshot=None,
        result=None,
        with_run=False,
        with_command=False,
    )
)
def test_no_evidence_files_make_the_decision_raise_or_cancel_a_seen_order(layout: Layout) -> None:
    root = Path(tempfile.mkdtemp(prefix="evidence-proof-"))
    try:
        run_dir = layout_write(root, layout, order_id=ORDER_ID)
        params = params_for(layout)
        gathered = evidence_gather(
            root=root,
            requests=[
                EvidenceRequest(
                    order_id=ORDER_ID,
                    run_id=1 if layout.with_run else None,
                    output_dir=str(run_dir) if layout.with_run else None,
                    tags=TAGS,
                    command=submit_command_get(params),
                    created_at=CREATED,
                )
            ],
            now=NOW,
            path_map=(),
            open_orders_max_age=30,
            events_max_bytes=1 << 26,
            clock_skew_seconds=60,
        )
    finally:
        shutil.rmtree(root)
    order = order_snapshot(
        TradeOrder(
            id=ORDER_ID,
            client_order_id=CLIENT,
            symbol="AAPL",
            side="BUY",
            quantity=10.0,
            order_type="MKT",
            status="NEW",
            filled_quantity=0.0,
            params=params,
            created_at=CREATED,
            updated_at=CREATED,
            run_id=1 if layout.with_run else None,
        ),
        runs={1: (1, "paper")},
    )
    gates = GateState(ib_reachable=True, market_open=True, bridge_problem=None, evidence=gathered.orders)
    decision = decide(order, gates=gates, settings=AutoRecoveryConfig(), now=NOW)
    json.dumps(decision.evidence, allow_nan=False)  # it goes into audit rows as it is
    event(f"decision: {decision.action} {decision.reason}")
    if shows_seen(layout, TAGS):
        assert decision.action is Action.SKIP, (decision, gathered.orders[ORDER_ID])


# --- whole sweeps on the database ----------------------------------------------------------


@pytest.mark.django_db
@settings(
    PROOF,
    max_examples=30,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # each step is a sweep: no shrinking
)
@seed(SEED)
@given(layout=layouts())
def test_whole_sweeps_never_cancel_an_order_its_files_show_seen(trading, layout: Layout) -> None:  # noqa: ANN001
    alias = trading_alias()
    for child in trading.root.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    with transaction.atomic(using=alias):
        run = factories.TradeRunFactory(
            project_id=1, params={"lean_execution": {"output_dir": str(trading.root / "run_1")}}
        )
        order = factories.TradeOrderFactory(
            client_order_id=CLIENT,
            run_id=run.pk if layout.with_run else None,
            params=params_for(layout),
            created_at=CREATED,
            updated_at=CREATED,
        )
        tags = order_tags(order_id=order.pk, client_order_id=CLIENT, params=order.params)
        layout_write(trading.root, layout, order_id=order.pk)
        result = sweep_run(now=NOW, actor="auto_recover")
        status = TradeOrder.objects.get(pk=order.pk).status
        transaction.set_rollback(True, using=alias)
    assert result.failed == 0
    event(f"reasons: {sorted(result.reasons())}")
    if shows_seen(layout, tags):
        assert status == "NEW", result.as_dict()["orders"]
