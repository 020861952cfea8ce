"""Property tests: no combination of broker evidence files makes the sweep raise, or cancel an
order the files show the broker has (missing, empty, truncated, huge, wrong types, stale).

The lines of other orders interleave with the order's own, and times are whatever Lean
writes: C#'s 0001-01-01, naive New York local times, yesterday, garbage. The oracle reads
the files as design says the broker's word is read (each file in its own line order, the
last line per order, fills never forgotten), never by a line's time within a file.
"""

from __future__ import annotations

import datetime as dt
import json
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
from recovery.gates.events import LedgerStore
from recovery.gates.evidence import order_tags, submit_command_get
from recovery.gates.evidence_read import EvidenceRequest, evidence_gather
from recovery.selectors import events_stores_clear, order_snapshot
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
        "0001-01-01T00:00:00",  # C#'s default DateTime
        "2026-11-24T10:58:00",  # naive New York local time: hours "old" read as UTC
        iso_utc(NOW - dt.timedelta(days=1)),  # a late line of yesterday's order
        iso_utc(NOW + dt.timedelta(minutes=10)),
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


def root_events_only(content: bytes) -> Layout:
    """A layout with nothing but the bridge root's events file (the explicit examples)."""
    return Layout(
        root_events=content,
        run_events=None,
        direct_events=None,
        root_snapshot=None,
        run_snapshot=None,
        result=None,
        with_run=False,
        with_command=False,
    )


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


TERMINAL = {"CANCELED", "CANCELLED", "INVALID", "REJECTED"}
TOLERANCE = dt.timedelta(seconds=60)  # the clock skew the gathering is given


def is_zero(filled: Any) -> bool:
    """design.md's `filled` = 0: a number (or numeric text) equal to zero; true/false are not."""
    if isinstance(filled, bool):
        return False
    if isinstance(filled, int | float):
        return filled == 0
    if isinstance(filled, str):
        try:
            return float(filled.strip()) == 0
        except ValueError:
            return False
    return False


def file_events(content: bytes) -> list[dict[str, Any]]:
    """The objects of a JSONL file in line order; the last line counts once it is whole."""
    found = []
    for raw in content.split(b"\n"):
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(parsed, dict):
            found.append(parsed)
    return found


def file_word(content: bytes, tags: frozenset[str]) -> tuple[str, Any] | None:
    """("fill" | "working" | "terminal", the last line's time) for the order; None: no line."""
    mine = [e for e in file_events(content) if isinstance(e.get("tag"), str) and e["tag"].strip() in tags]
    if not mine:
        return None
    if any(e.get("filled") is not None and not is_zero(e["filled"]) for e in mine):
        return "fill", None
    status = mine[-1].get("status")
    terminal = isinstance(status, str) and status.strip().upper() in TERMINAL
    return ("terminal" if terminal else "working"), mine[-1].get("time")


def moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def events_say(layout: Layout, tags: frozenset[str]) -> tuple[bool, bool]:
    """(seen, closed): across files, working wins unless a terminal line is later by > TOLERANCE."""
    files = [layout.root_events, layout.run_events if layout.with_run else layout.direct_events]
    words = [w for w in (file_word(c, tags) for c in files if c) if w is not None]
    if any(kind == "fill" for kind, _ in words):
        return True, False
    terminal = [moment(t) for kind, t in words if kind == "terminal"]
    for kind, time in words:
        if kind != "working":
            continue
        start = moment(time)
        if start is None or not any(t is not None and t > start + TOLERANCE for t in terminal):
            return True, False
    return False, bool(terminal)


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
    seen, closed = events_say(layout, tags)
    if seen:
        return True
    snapshots_ = [layout.root_snapshot, layout.run_snapshot if layout.with_run else None]
    if any(snapshot_lists(s, tags) for s in snapshots_):
        return True
    # A `submitted` result, unless the order's last events say the broker closed it since.
    return layout.with_command and layout.result == b'{"status": "submitted"}' and not closed


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
    layout=root_events_only(
        b'{"tag": "ev-order-1", "status": "Filled", "filled": 10}\n{"tag": "ev-order-1", "sta'
    )
)
@example(  # the order's fill, then a line of another order stamped C#'s default time
    layout=root_events_only(
        b'{"tag": "ev-order-1", "status": "Filled", "filled": 5, "time": "2026-11-24T15:59:00Z"}\n'
        b'{"tag": "other", "status": "Submitted", "time": "0001-01-01T00:00:00"}\n'
    )
)
@example(  # in file order the order's last word is Submitted, though its time is the oldest
    layout=root_events_only(
        b'{"tag": "bt-1", "status": "Canceled", "time": "2026-11-24T15:59:00Z"}\n'
        b'{"tag": "other", "status": "Filled", "filled": 1, "time": "2026-11-24T10:58:00"}\n'
        b'{"tag": "bt-1", "status": "Submitted", "time": "0001-01-01T00:00:00"}\n'
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
            store=LedgerStore(None),
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
    # Files are written anew for each example, never appended to as Lean does: this host's
    # ledgers of the last example's files are of no use (and a reused inode could fool them).
    events_stores_clear()
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
