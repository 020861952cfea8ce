"""The decision table of docs/design.md, row by row, then its boundaries and odd inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from recovery.db.timestamps import iso_parse as parse_timestamp
from recovery.gates.evidence import KIND_COMMAND_FILE, KIND_EVENT, KIND_OPEN_ORDERS, OrderEvidence, Sighting
from recovery.sweep.config import AutoRecoveryConfig, resume_parse
from recovery.sweep.decisions import (
    TERMINAL_RUN_STATUSES,
    Action,
    Decision,
    GateState,
    NotCandidate,
    OrderSnapshot,
    Reason,
    candidate_problem,
    chain_attempts,
    decide,
    order_problem,
    price_deviation_pct,
    submit_in_flight,
)
from recovery.sweep.labels import reason_label
from recovery.sweep.placement import RunPlacement, SenderQueue, SenderState

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
CLIENT_ID = "run7-AAPL-BUY-1"


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def make_order(**overrides: Any) -> OrderSnapshot:
    """A stale, valid LMT order of project 7 (paper), in run 7 that has ended: nothing objects."""
    values: dict[str, Any] = {
        "id": 101,
        "client_order_id": CLIENT_ID,
        "symbol": "AAPL",
        "side": "BUY",
        "quantity": 10.0,
        "order_type": "LMT",
        "limit_price": 100.0,
        "status": "NEW",
        "filled_quantity": 0.0,
        "ib_order_id": None,
        "ib_perm_id": None,
        "params": {},
        "created_at": ago(120),
        "updated_at": ago(120),
        "project_id": 7,
        "mode": "paper",
        "run_id": 7,
        "run_status": "done",
    }
    values.update(overrides)
    return OrderSnapshot(**values)


class EveryOrder(Mapping):
    """Broker evidence that says the same about any order id (the evidence tests are in
    test_gates_evidence; here only its effect on the table matters)."""

    def __init__(self, **fields: Any) -> None:
        self.evidence = OrderEvidence(tags=frozenset({CLIENT_ID}), command_id=None, **fields)

    def __getitem__(self, order_id: int) -> OrderEvidence:
        return self.evidence

    def __iter__(self):  # noqa: ANN204
        return iter(())

    def __len__(self) -> int:
        return 0


def closed_at_broker() -> EveryOrder:
    sighting = Sighting(KIND_EVENT, "/bridge/execution_events.jsonl", tag=CLIENT_ID, status="CANCELED")
    return EveryOrder(closed=sighting)


def listed_open() -> EveryOrder:
    return EveryOrder(open=Sighting(KIND_OPEN_ORDERS, "/bridge/open_orders.json", tag=CLIENT_ID))


# The backend's direct-order loop would send a replacement: api_mode 'ib', paper, nothing ahead.
SENDER_READY = SenderState(api_mode="ib", mode="paper")


def make_gates(**overrides: Any) -> GateState:
    """Every gate open: IB up, market open, a fresh quote for AAPL near its limit, no broker evidence."""
    values: dict[str, Any] = {
        "ib_reachable": True,
        "market_open": True,
        "bridge_problem": None,
        "evidence": EveryOrder(),
        "in_blackout": False,
        "halted": frozenset(),
        "quotes": {"AAPL": 100.5},
        "sender": SENDER_READY,
    }
    values.update(overrides)
    return GateState(**values)


def make_settings(**overrides: Any) -> AutoRecoveryConfig:
    """The defaults, but make_order's run order may be re-placed (its run has no resume: rule 7c)."""
    return AutoRecoveryConfig(**{"replace_run_orders": True, **overrides})


def pending(requested_at: Any = None, **extra: Any) -> dict[str, Any]:
    command: dict[str, Any] = {"pending": True, **extra}
    if requested_at is not None:
        command["requested_at"] = requested_at
    return {"submit_command": command}


def attempts(count: Any) -> dict[str, Any]:
    return {"auto_recovery": {"attempts": count, "root_order_id": 100, "root_client_order_id": "run7-AAPL"}}


def run(
    order: OrderSnapshot | None = None,
    gates: GateState | None = None,
    settings: AutoRecoveryConfig | None = None,
) -> Decision:
    return decide(
        order or make_order(),
        gates=gates or make_gates(),
        settings=settings or make_settings(),
        now=NOW,
    )


# Rules 1..10 of the table, in table order.
TABLE = (
    Reason.DISABLED,
    Reason.BLACKOUT,
    Reason.CLOCK_SKEW,
    Reason.IB_UNREACHABLE,
    Reason.BROKER_EVIDENCE_UNAVAILABLE,  # row 2b: the bridge root (4c uses the code per order)
    Reason.GUARD_HALTED,
    Reason.OWNED_BY_BACKEND,
    Reason.OPEN_AT_BROKER,
    Reason.SUBMIT_IN_FLIGHT,
    Reason.CLOSED_AT_BROKER,
    Reason.INVALID_ORDER,
    Reason.RETRIES_EXHAUSTED,
    Reason.STALE_INTENT,
    Reason.OUTSIDE_RTH,
    Reason.QUOTE_UNAVAILABLE,
    Reason.PRICE_DEVIATION,
)


def from_row(first: Reason) -> Decision:
    """Decide a case where every rule from `first` on matches and every earlier one does not.

    Rules 9 and 10 exclude each other (no quote vs. a quote too far), so rule 10's case has a
    quote 5% off where the earlier rows have none.
    """
    on = set(TABLE[TABLE.index(first) :])
    params: dict[str, Any] = {}
    if Reason.SUBMIT_IN_FLIGHT in on:
        params |= pending(requested_at="2026-11-24T14:59:55Z")
    params |= attempts(1 if Reason.RETRIES_EXHAUSTED in on else 0)
    created = NOW - timedelta(days=1) if Reason.STALE_INTENT in on else ago(120)
    run_status = "running" if Reason.OWNED_BY_BACKEND in on else "done"
    order = make_order(
        side="buy" if Reason.INVALID_ORDER in on else "BUY",
        params=params,
        created_at=created,
        run_status=run_status,
    )
    gates = make_gates(
        in_blackout=Reason.BLACKOUT in on,
        clock_skew_seconds=61.0 if Reason.CLOCK_SKEW in on else 0.2,
        ib_reachable=Reason.IB_UNREACHABLE not in on,
        bridge_problem="the bridge root /srv/bridge is missing"
        if Reason.BROKER_EVIDENCE_UNAVAILABLE in on
        else None,
        halted=frozenset({(7, "paper")}) if Reason.GUARD_HALTED in on else frozenset(),
        evidence=(
            listed_open()
            if Reason.OPEN_AT_BROKER in on
            else closed_at_broker()
            if Reason.CLOSED_AT_BROKER in on
            else EveryOrder()
        ),
        market_open=Reason.OUTSIDE_RTH not in on,
        quotes={} if Reason.QUOTE_UNAVAILABLE in on else {"AAPL": 105.0},
    )
    settings = make_settings(enabled=Reason.DISABLED not in on, max_auto_retries=1)
    return run(order, gates, settings)


def assert_skip(decision: Decision, reason: Reason) -> None:
    assert (decision.action, decision.reason) == (Action.SKIP, reason)
    assert not decision.cancels
    assert not decision.replaces


def assert_cancel(decision: Decision, reason: Reason) -> None:
    assert (decision.action, decision.reason) == (Action.CANCEL, reason)
    assert decision.cancels
    assert not decision.replaces


def assert_replaced(decision: Decision) -> None:
    assert (decision.action, decision.reason) == (Action.REPLACE, Reason.REPLACED)
    assert decision.cancels
    assert decision.replaces


# --- the table, row by row: the first rule that matches decides ------------------------------


def test_row_1_disabled_beats_every_other_rule() -> None:
    assert_skip(from_row(Reason.DISABLED), Reason.DISABLED)


def test_row_1b_blackout_beats_ib_unreachable_and_everything_after() -> None:
    assert_skip(from_row(Reason.BLACKOUT), Reason.BLACKOUT)


def test_row_1c_clock_skew_beats_ib_unreachable_and_everything_after() -> None:
    decision = from_row(Reason.CLOCK_SKEW)
    assert_skip(decision, Reason.CLOCK_SKEW)
    assert decision.detail == "the database's clock is 61.0 s ahead of this host's (tolerance 5 s)"


@pytest.mark.parametrize(
    ("skew", "stopped"),
    [(61.0, True), (-61.0, True), (5.0, False), (-5.0, False), (5.001, True), (-5.001, True), (None, False)],
)
def test_row_1c_stops_past_the_tolerance_either_way_and_not_at_it(skew: float | None, stopped: bool) -> None:
    """Exactly at the tolerance passes; None is the embedded database, read with this host's clock."""
    decision = run(gates=make_gates(clock_skew_seconds=skew))
    assert (decision.reason is Reason.CLOCK_SKEW) is stopped
    if skew is not None and skew < 0 and stopped:
        assert "behind this host's" in decision.detail


def test_an_order_created_in_the_future_past_the_tolerance_is_left_alone() -> None:
    """A created_at ahead of this host's now (a wrong clock or time zone where it was written):
    its age means nothing, so it is never taken for stale."""
    decision = run(make_order(created_at=NOW + timedelta(seconds=60)))
    assert_skip(decision, Reason.CLOCK_SKEW)
    assert decision.detail == "created 60 s after this host's now"
    assert run(make_order(created_at=NOW + timedelta(seconds=4))).reason is not Reason.CLOCK_SKEW


def test_row_2_ib_unreachable_beats_guard_halted_and_everything_after() -> None:
    assert_skip(from_row(Reason.IB_UNREACHABLE), Reason.IB_UNREACHABLE)


def test_row_2b_a_missing_bridge_root_beats_guard_halted_and_everything_after() -> None:
    decision = from_row(Reason.BROKER_EVIDENCE_UNAVAILABLE)
    assert_skip(decision, Reason.BROKER_EVIDENCE_UNAVAILABLE)
    assert decision.detail == "the bridge root /srv/bridge is missing"


def test_row_3_guard_halted_beats_open_at_broker_and_everything_after() -> None:
    decision = from_row(Reason.GUARD_HALTED)
    assert_skip(decision, Reason.GUARD_HALTED)
    assert decision.detail == "project 7 (paper) is halted"


def test_row_3b_owned_by_backend_beats_open_at_broker_and_everything_after() -> None:
    decision = from_row(Reason.OWNED_BY_BACKEND)
    assert_skip(decision, Reason.OWNED_BY_BACKEND)
    assert decision.detail == "run 7 is 'running', not finished: the run may still send it"


@pytest.mark.parametrize("status", sorted(TERMINAL_RUN_STATUSES) + ["Done", " partial "])
def test_a_run_that_has_ended_lets_go_of_its_orders(status: str) -> None:
    assert_replaced(run(make_order(run_status=status)))


@pytest.mark.parametrize("status", ["running", "queued", "starting", "weird", ""])
def test_a_run_that_has_not_ended_owns_its_orders(status: str) -> None:
    assert_skip(run(make_order(run_status=status)), Reason.OWNED_BY_BACKEND)


@pytest.mark.parametrize(
    ("params", "owned"),
    [
        ({"direct_retry": {"pending": True, "reason": "auto_recovery", "count": 0}}, True),
        ({"direct_retry": {"pending": 1}}, True),
        ({"direct_retry": {"pending": False}}, False),
        ({"submit_command": {"pending": True, "source": "leader_command"}}, True),
        ({"submit_command": {"pending": "true"}}, True),  # no source: the leader's
        (
            {
                "submit_command": {
                    "pending": True,
                    "source": "short_lived",
                    "requested_at": "2026-11-24T14:00:00Z",
                }
            },
            False,
        ),
        ({"submit_command": {"pending": False, "source": "leader_command"}}, False),
    ],
)
def test_a_direct_order_is_the_backends_loops_while_it_will_send_it(params: dict, owned: bool) -> None:
    decision = run(make_order(run_id=None, run_status=None, params=params))
    if owned:
        assert_skip(decision, Reason.OWNED_BY_BACKEND)
    else:
        assert decision.reason is not Reason.OWNED_BY_BACKEND


def test_row_4_open_at_broker_beats_submit_in_flight_and_everything_after() -> None:
    assert_skip(from_row(Reason.OPEN_AT_BROKER), Reason.OPEN_AT_BROKER)


def test_row_5_submit_in_flight_beats_invalid_order_and_everything_after() -> None:
    assert_skip(from_row(Reason.SUBMIT_IN_FLIGHT), Reason.SUBMIT_IN_FLIGHT)


def test_row_5b_closed_at_broker_cancels_without_a_replacement_and_beats_invalid_order() -> None:
    decision = from_row(Reason.CLOSED_AT_BROKER)
    assert_cancel(decision, Reason.CLOSED_AT_BROKER)
    assert decision.detail.startswith("closed at the broker: CANCELED event")
    assert decision.evidence["closed"]["status"] == "CANCELED"


def test_row_6_invalid_order_cancels_and_beats_retries_exhausted_and_everything_after() -> None:
    decision = from_row(Reason.INVALID_ORDER)
    assert_cancel(decision, Reason.INVALID_ORDER)
    assert decision.detail == "side 'buy' is not BUY or SELL"


def test_row_7_retries_exhausted_cancels_and_beats_outside_rth_and_everything_after() -> None:
    decision = from_row(Reason.RETRIES_EXHAUSTED)
    assert_cancel(decision, Reason.RETRIES_EXHAUSTED)
    assert decision.attempt == 1
    assert decision.detail == "1 of 1 used"


def test_row_7b_stale_intent_cancels_an_order_of_an_earlier_day_and_beats_outside_rth() -> None:
    decision = from_row(Reason.STALE_INTENT)
    assert_cancel(decision, Reason.STALE_INTENT)
    assert decision.detail == "created on 2026-11-23, today is 2026-11-24 in New York"


@pytest.mark.parametrize(
    ("created", "now", "same_day_only", "reason"),
    [
        # Two minutes old, but created before midnight in New York (UTC's date is the same).
        ("2026-11-25T04:59:00Z", "2026-11-25T05:01:00Z", True, Reason.STALE_INTENT),
        ("2026-11-25T04:59:00Z", "2026-11-25T05:01:00Z", False, Reason.REPLACED),
        # Hours old in UTC's yesterday, but today in New York.
        ("2026-11-24T23:00:00Z", "2026-11-25T04:00:00Z", True, Reason.REPLACED),
    ],
)
def test_stale_intent_counts_days_in_new_york(
    created: str, now: str, same_day_only: bool, reason: Reason
) -> None:
    order = make_order(created_at=parse_timestamp(created), order_type="MKT", limit_price=None)
    settings = make_settings(replace_same_trading_day_only=same_day_only, allow_replace_outside_rth=True)
    decision = decide(order, gates=make_gates(market_open=False), settings=settings, now=parse_timestamp(now))
    assert decision.reason is reason


def test_row_8_outside_rth_cancels_and_beats_quote_unavailable() -> None:
    assert_cancel(from_row(Reason.OUTSIDE_RTH), Reason.OUTSIDE_RTH)


def test_row_9_quote_unavailable_cancels_a_limit_order_without_a_quote() -> None:
    decision = from_row(Reason.QUOTE_UNAVAILABLE)
    assert_cancel(decision, Reason.QUOTE_UNAVAILABLE)
    assert decision.quote is None
    assert decision.detail == "no fresh quote for 'AAPL'"


def test_row_10_price_deviation_cancels_when_the_quote_is_too_far() -> None:
    decision = from_row(Reason.PRICE_DEVIATION)
    assert_cancel(decision, Reason.PRICE_DEVIATION)
    assert decision.quote == 105.0
    assert decision.deviation_pct == 5.0


def test_row_11_otherwise_replaced_with_its_inputs() -> None:
    decision = run()
    assert_replaced(decision)
    assert decision.quote == 100.5
    assert decision.deviation_pct == 0.5
    assert decision.age_seconds == 120.0
    assert decision.attempt == 0
    assert decision.detail is None


# --- row 1b / 2 / 3 / 4: gates ---------------------------------------------------------------


def test_skips_carry_age_and_attempt() -> None:
    decision = run(make_order(params=attempts(0), created_at=ago(61.25)), make_gates(in_blackout=True))
    assert_skip(decision, Reason.BLACKOUT)
    assert decision.age_seconds == 61.25
    assert decision.attempt == 0


def test_age_is_rounded_to_milliseconds() -> None:
    decision = run(make_order(created_at=NOW - timedelta(seconds=90, microseconds=123456)))
    assert decision.age_seconds == 90.123


def test_guard_halts_only_the_same_project_and_mode() -> None:
    halted = make_gates(halted=frozenset({(7, "live"), (8, "paper")}))
    live = make_gates(halted=frozenset({(7, "live"), (8, "paper")}), sender=SenderState("ib", "live"))
    assert_replaced(run(make_order(project_id=7, mode="paper"), halted))
    assert_skip(run(make_order(project_id=7, mode="live"), halted), Reason.GUARD_HALTED)
    assert_skip(run(make_order(project_id=8, mode="paper"), halted), Reason.GUARD_HALTED)
    assert_replaced(run(make_order(project_id=8, mode="live"), live))


def test_an_order_without_a_project_is_never_halted() -> None:
    halted = make_gates(halted=frozenset({(7, "paper"), (None, "paper")}))
    assert_replaced(run(make_order(project_id=None), halted))


def test_open_at_broker_when_the_evidence_lists_the_order() -> None:
    assert_replaced(run(gates=make_gates(evidence=EveryOrder())))  # nothing listed proves nothing
    decision = run(gates=make_gates(evidence=listed_open()))
    assert_skip(decision, Reason.OPEN_AT_BROKER)
    assert decision.detail == f"listed as open under tag {CLIENT_ID!r} in /bridge/open_orders.json"
    assert decision.evidence["open"] == {
        "kind": "open_orders",
        "path": "/bridge/open_orders.json",
        "tag": CLIENT_ID,
    }


# --- row 5: a submit in flight ---------------------------------------------------------------


def test_pending_submit_younger_than_the_commands_lifetime_is_in_flight() -> None:
    decision = run(make_order(params=pending(requested_at="2026-11-24T14:58:01Z")))  # 119 s ago
    assert_skip(decision, Reason.SUBMIT_IN_FLIGHT)


def test_pending_submit_as_old_as_the_commands_lifetime_is_not_in_flight() -> None:
    assert_replaced(run(make_order(params=pending(requested_at="2026-11-24T14:58:00Z"))))  # 120 s
    assert_replaced(run(make_order(params=pending(requested_at="2026-11-24T14:00:00Z"))))


@pytest.mark.parametrize("timeout", [10, 45, 600])
def test_the_in_flight_window_is_the_backends_120_s_whatever_new_timeout_seconds_says(timeout: int) -> None:
    young = make_order(params=pending(requested_at="2026-11-24T14:58:30Z"), created_at=ago(900))  # 90 s
    assert_skip(run(young, settings=make_settings(new_timeout_seconds=timeout)), Reason.SUBMIT_IN_FLIGHT)


def test_an_expires_at_decides_when_it_can_be_read() -> None:
    later = make_order(params=pending(requested_at="2026-11-24T14:00:00Z", expires_at="2026-11-24T15:00:05Z"))
    assert_skip(run(later), Reason.SUBMIT_IN_FLIGHT)
    gone = make_order(params=pending(requested_at="2026-11-24T14:59:50Z", expires_at="2026-11-24T14:59:59Z"))
    assert_replaced(run(gone))


@pytest.mark.parametrize("expires_at", ["soon", "2026-13-01T00:00:00Z", 5, ["x"], ""])
def test_an_unreadable_expires_at_means_requested_at_plus_120_s(expires_at: Any) -> None:
    young = make_order(params=pending(requested_at="2026-11-24T14:58:30Z", expires_at=expires_at))
    assert_skip(run(young), Reason.SUBMIT_IN_FLIGHT)
    old = make_order(params=pending(requested_at="2026-11-24T14:57:00Z", expires_at=expires_at))
    assert_replaced(run(old))


def test_requested_at_with_an_offset_is_converted_to_utc() -> None:
    # 09:59:50 at -05:00 is 10 s ago; read as naive UTC it would be five hours old.
    young = make_order(params=pending(requested_at="2026-11-24T09:59:50-05:00"))
    assert_skip(run(young), Reason.SUBMIT_IN_FLIGHT)
    # 15:57:00 at +01:00 is 180 s ago; read as naive UTC it would lie in the future.
    old = make_order(params=pending(requested_at="2026-11-24T15:57:00+01:00"))
    assert_replaced(run(old))


def test_naive_requested_at_is_utc() -> None:
    assert_skip(run(make_order(params=pending(requested_at="2026-11-24T14:59:50"))), Reason.SUBMIT_IN_FLIGHT)
    # 180 s old as UTC; read as New York time it would lie five hours in the future.
    assert_replaced(run(make_order(params=pending(requested_at="2026-11-24T14:57:00"))))


@pytest.mark.parametrize("requested_at", [None, "", "yesterday", "2026-13-01T00:00:00Z", 1764000000, ["x"]])
def test_missing_or_unusable_requested_at_falls_back_to_updated_at(requested_at: Any) -> None:
    params = {"submit_command": {"pending": True, "requested_at": requested_at}}
    if requested_at is None:
        del params["submit_command"]["requested_at"]
    young = make_order(params=params, updated_at=ago(10))
    assert_skip(run(young), Reason.SUBMIT_IN_FLIGHT)
    old = make_order(params=params, updated_at=ago(180))
    assert_replaced(run(old))


@pytest.mark.parametrize("requested_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_requested_at_out_of_datetime_range_falls_back_to_updated_at(requested_at: str) -> None:
    params = pending(requested_at=requested_at)
    assert_skip(run(make_order(params=params, updated_at=ago(10))), Reason.SUBMIT_IN_FLIGHT)
    assert_replaced(run(make_order(params=params, updated_at=ago(180))))


def test_without_requested_at_or_updated_at_created_at_stands_in() -> None:
    assert not submit_in_flight(make_order(params=pending(), updated_at=None, created_at=ago(120)), now=NOW)
    assert submit_in_flight(make_order(params=pending(), updated_at=None, created_at=ago(119)), now=NOW)


def test_a_waiting_command_file_holds_the_order_whatever_its_params_say() -> None:
    waiting = Sighting(
        KIND_COMMAND_FILE,
        "/bridge/commands/c1.json",
        tag=CLIENT_ID,
        time="2026-11-24T15:01:00Z",
        command_id="c1",
    )
    superseded = {"submit_command": {"pending": False, "status": "superseded", "command_id": "c1"}}
    decision = run(
        make_order(params=superseded), gates=make_gates(evidence=EveryOrder(waiting_command=waiting))
    )
    assert_skip(decision, Reason.SUBMIT_IN_FLIGHT)
    assert decision.detail == (
        "command c1 (/bridge/commands/c1.json), expires 2026-11-24 15:01:00 UTC, for tag 'run7-AAPL-BUY-1'"
    )
    assert reason_label({"reason": decision.reason, "detail": decision.detail}) == (
        "Left alone: a submit is still in flight: command c1 (/bridge/commands/c1.json), "
        "expires 2026-11-24 15:01:00 UTC, for tag 'run7-AAPL-BUY-1'"
    )


def test_a_pending_submit_names_its_command_file_and_expiry() -> None:
    params = pending(requested_at="2026-11-24T14:59:00Z", expires_at="2026-11-24T10:05:30-05:00")
    params["submit_command"] |= {
        "command_id": "submit_order_123",
        "command_path": "commands/submit_order_123.json",
    }
    decision = run(make_order(params=params))
    assert_skip(decision, Reason.SUBMIT_IN_FLIGHT)
    assert (
        decision.detail
        == "command submit_order_123 (commands/submit_order_123.json), expires 2026-11-24 15:05:30 UTC"
    )
    assert reason_label({"reason": decision.reason, "detail": decision.detail}) == (
        "Left alone: a submit is still in flight: command submit_order_123 "
        "(commands/submit_order_123.json), expires 2026-11-24 15:05:30 UTC"
    )


def test_a_pending_submit_without_expiry_or_file_says_so() -> None:
    # requested 30 s ago, no expires_at: the backend's 120 s from requested_at; no id, no path.
    decision = run(
        make_order(params={"submit_command": {"pending": True, "requested_at": "2026-11-24T14:59:30Z"}})
    )
    assert_skip(decision, Reason.SUBMIT_IN_FLIGHT)
    assert decision.detail == (
        "command without a command_id (no file named in the order's params), expires 2026-11-24 15:01:30 UTC"
    )


@pytest.mark.parametrize("flag", [True, "true", "TRUE", 1, "1", "yes", " on ", "y"])
def test_pending_as_the_backend_reads_it_counts(flag: Any) -> None:
    params = {"submit_command": {"pending": flag, "requested_at": "2026-11-24T14:59:55Z"}}
    assert_skip(run(make_order(params=params, updated_at=ago(5))), Reason.SUBMIT_IN_FLIGHT)


@pytest.mark.parametrize("flag", [None, False, "false", 0, "0", "off", "weird", [], 1.0])
def test_pending_the_backend_reads_as_false_does_not(flag: Any) -> None:
    params = {"submit_command": {"pending": flag, "requested_at": "2026-11-24T14:59:55Z"}}
    assert_replaced(run(make_order(params=params, updated_at=ago(5))))


@pytest.mark.parametrize("command", [None, "pending", True, ["pending"], {}])
def test_a_submit_command_that_is_not_an_object_is_not_in_flight(command: Any) -> None:
    assert_replaced(run(make_order(params={"submit_command": command}, updated_at=ago(5))))


# --- row 6: the order row itself is unusable -------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        ({"side": "buy"}, "side"),
        ({"side": "HOLD"}, "side"),
        ({"side": ""}, "side"),
        ({"side": None}, "side"),
        ({"order_type": "STP"}, "order_type"),
        ({"order_type": "lmt"}, "order_type"),
        ({"order_type": None}, "order_type"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": 0.0}, "quantity"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": math.nan}, "quantity"),
        ({"quantity": math.inf}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"quantity": "10"}, "quantity"),
        ({"order_type": "LMT", "limit_price": None}, "limit_price"),
        ({"order_type": "LMT", "limit_price": 0}, "limit_price"),
        ({"order_type": "LMT", "limit_price": -100.0}, "limit_price"),
        ({"order_type": "LMT", "limit_price": math.nan}, "limit_price"),
        ({"order_type": "LMT", "limit_price": math.inf}, "limit_price"),
        ({"order_type": "LMT", "limit_price": True}, "limit_price"),
        ({"order_type": "PEG_MID", "limit_price": None}, "limit_price"),
    ],
)
def test_an_unusable_order_row_is_cancelled_with_a_detail(fields: dict[str, Any], mentions: str) -> None:
    order = make_order(**fields)
    decision = run(order)
    assert_cancel(decision, Reason.INVALID_ORDER)
    assert decision.detail is not None
    assert mentions in decision.detail
    assert decision.detail == order_problem(order)


@pytest.mark.parametrize(
    "fields",
    [
        {"side": "SELL"},
        {"order_type": "MKT", "limit_price": None},
        {"order_type": "ADAPTIVE_LMT", "limit_price": None},
        {"order_type": "PEG_MID", "limit_price": 99.5},
        {"quantity": 1},
        {"quantity": 0.5},
        {"limit_price": 100},
    ],
)
def test_a_usable_order_row_has_no_problem(fields: dict[str, Any]) -> None:
    assert order_problem(make_order(**fields)) is None


def test_the_first_problem_of_the_row_is_the_one_reported() -> None:
    order = make_order(side="HOLD", order_type="STP", quantity=0)
    assert order_problem(order) == "side 'HOLD' is not BUY or SELL"
    assert order_problem(replace(order, side="SELL")) == (
        "order_type 'STP' is not one of ADAPTIVE_LMT, LMT, MKT, PEG_MID"
    )
    assert order_problem(replace(order, side="SELL", order_type="MKT")) == (
        "quantity 0 is not a positive finite number"
    )
    assert order_problem(make_order(limit_price=None)) == "LMT needs a positive finite limit_price, got None"


# --- row 7: retries along the chain ----------------------------------------------------------


def test_the_last_allowed_retry_is_replaced_and_the_next_is_exhausted() -> None:
    settings = make_settings(max_auto_retries=3)
    last = run(make_order(params=attempts(2)), settings=settings)
    assert_replaced(last)
    assert last.attempt == 2
    exhausted = run(make_order(params=attempts(3)), settings=settings)
    assert_cancel(exhausted, Reason.RETRIES_EXHAUSTED)
    assert exhausted.detail == "3 of 3 used"
    assert_cancel(run(make_order(params=attempts(4)), settings=settings), Reason.RETRIES_EXHAUSTED)


def test_zero_retries_means_cancel_only() -> None:
    decision = run(make_order(params={}), settings=make_settings(max_auto_retries=0))
    assert_cancel(decision, Reason.RETRIES_EXHAUSTED)
    assert decision.attempt == 0
    assert decision.detail == "0 of 0 used"


@pytest.mark.parametrize("count", ["2", "0", -1, True, False, 1.0, None, [1]])
def test_unreadable_attempts_count_as_exhausted(count: Any) -> None:
    decision = run(make_order(params=attempts(count)), settings=make_settings(max_auto_retries=10))
    assert_cancel(decision, Reason.RETRIES_EXHAUSTED)
    assert decision.attempt == -1
    assert decision.detail == "params.auto_recovery.attempts is unreadable"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, 0),
        ({"auto_recovery": None}, 0),
        ({"auto_recovery": "garbage"}, 0),
        ({"auto_recovery": {}}, 0),
        ({"auto_recovery": {"last_action": "cancel", "sweep_id": "s1"}}, 0),
        ({"auto_recovery": {"attempts": 0}}, 0),
        ({"auto_recovery": {"attempts": 2}}, 2),
        ({"auto_recovery": {"attempts": "2"}}, None),
        ({"auto_recovery": {"attempts": -1}}, None),
        ({"auto_recovery": {"attempts": True}}, None),
    ],
)
def test_chain_attempts_reads_the_orders_own_count(params: dict[str, Any], expected: int | None) -> None:
    assert chain_attempts(params) == expected


# --- row 8: regular trading hours ------------------------------------------------------------


def test_outside_rth_replaces_when_allowed() -> None:
    closed = make_gates(market_open=False)
    assert_cancel(run(gates=closed), Reason.OUTSIDE_RTH)
    assert_replaced(run(gates=closed, settings=make_settings(allow_replace_outside_rth=True)))


# --- rows 9 and 10: quotes and the price check -----------------------------------------------


def test_deviation_exactly_at_the_limit_passes() -> None:
    for quote in (101.5, 98.5):
        decision = run(gates=make_gates(quotes={"AAPL": quote}))
        assert_replaced(decision)
        assert decision.deviation_pct == 1.5


def test_deviation_just_over_the_limit_fails() -> None:
    for quote in (101.5001, 98.4999):
        decision = run(gates=make_gates(quotes={"AAPL": quote}))
        assert_cancel(decision, Reason.PRICE_DEVIATION)
        assert decision.quote == quote
        assert decision.deviation_pct == 1.5001


def test_deviation_at_the_limit_despite_float_noise_passes() -> None:
    # In binary floats |0.3045 - 0.3| / 0.3 * 100 is 1.5000000000000013.
    assert abs(0.3045 - 0.3) / 0.3 * 100 > 1.5
    order = make_order(symbol="PENNY", limit_price=0.3)
    decision = run(order, make_gates(quotes={"PENNY": 0.3045}), make_settings(max_price_deviation_pct=1.5))
    assert_replaced(decision)
    assert decision.deviation_pct == 1.5
    over = run(order, make_gates(quotes={"PENNY": 0.30451}), make_settings(max_price_deviation_pct=1.5))
    assert_cancel(over, Reason.PRICE_DEVIATION)


def test_price_deviation_pct_is_exact_decimal() -> None:
    assert price_deviation_pct(quote=101.5, limit_price=100.0) == Decimal("1.5")
    assert price_deviation_pct(quote=0.3045, limit_price=0.3) == Decimal("1.5")
    assert price_deviation_pct(quote=0.2955, limit_price=0.3) == Decimal("1.5")
    assert price_deviation_pct(quote=100, limit_price=100) == 0


def test_price_check_off_replaces_a_limit_order_without_a_quote() -> None:
    off = make_settings(max_price_deviation_pct=0)
    for quotes in (None, {}):
        decision = run(gates=make_gates(quotes=quotes), settings=off)
        assert_replaced(decision)
        assert decision.quote is None
        assert decision.deviation_pct is None
    far = run(gates=make_gates(quotes={"AAPL": 150.0}), settings=off)
    assert_replaced(far)
    assert far.deviation_pct is None


def test_no_quotes_file_is_quote_unavailable_for_a_limit_order() -> None:
    assert_cancel(run(gates=make_gates(quotes=None)), Reason.QUOTE_UNAVAILABLE)


@pytest.mark.parametrize("order_type", ["MKT", "ADAPTIVE_LMT"])
def test_market_and_adaptive_orders_never_need_a_quote(order_type: str) -> None:
    order = make_order(order_type=order_type, limit_price=None)
    for quotes in (None, {}, {"AAPL": 500.0}):
        decision = run(order, make_gates(quotes=quotes))
        assert_replaced(decision)
        assert decision.deviation_pct is None


def test_peg_mid_is_limit_like() -> None:
    peg = make_order(order_type="PEG_MID", limit_price=100.0)
    assert_cancel(run(peg, make_gates(quotes={})), Reason.QUOTE_UNAVAILABLE)
    assert_cancel(run(peg, make_gates(quotes={"AAPL": 102.0})), Reason.PRICE_DEVIATION)
    decision = run(peg, make_gates(quotes={"AAPL": 101.0}))
    assert_replaced(decision)
    assert decision.deviation_pct == 1.0


@pytest.mark.parametrize("symbol", ["aapl", " AAPL ", "Aapl\t", "AAPL"])
def test_symbols_are_compared_stripped_and_upper_case(symbol: str) -> None:
    decision = run(make_order(symbol=symbol), make_gates(quotes={"AAPL": 100.5}))
    assert_replaced(decision)
    assert decision.quote == 100.5


def test_another_symbols_quote_is_no_quote() -> None:
    decision = run(make_order(symbol="MSFT"), make_gates(quotes={"AAPL": 100.5, "MSFTX": 100.0}))
    assert_cancel(decision, Reason.QUOTE_UNAVAILABLE)
    assert decision.detail == "no fresh quote for 'MSFT'"


# --- parse_timestamp -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T14:59:50Z", datetime(2026, 11, 24, 14, 59, 50, tzinfo=UTC)),
        ("2026-11-24T14:59:50z", datetime(2026, 11, 24, 14, 59, 50, tzinfo=UTC)),
        ("2026-11-24T14:59:50.250000Z", datetime(2026, 11, 24, 14, 59, 50, 250000, tzinfo=UTC)),
        ("2026-11-24T09:59:50-05:00", datetime(2026, 11, 24, 14, 59, 50, tzinfo=UTC)),
        ("2026-11-24T14:59:50+00:00", datetime(2026, 11, 24, 14, 59, 50, tzinfo=UTC)),
        ("2026-11-24T14:59:50", datetime(2026, 11, 24, 14, 59, 50, tzinfo=UTC)),
        ("2026-11-24 14:59:50", datetime(2026, 11, 24, 14, 59, 50, tzinfo=UTC)),
        ("  2026-11-24T14:59:50Z  ", datetime(2026, 11, 24, 14, 59, 50, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_gives_aware_utc(text: str, expected: datetime) -> None:
    moment = parse_timestamp(text)
    assert moment == expected
    assert moment is not None
    assert moment.utcoffset() == timedelta(0)
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "Z",
        "garbage",
        "2026-02-30T00:00:00Z",
        "2026-11-24T25:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        1764000000,
        1764000000.5,
        datetime(2026, 11, 24, tzinfo=UTC),
        ["2026-11-24T14:59:50Z"],
    ],
)
def test_parse_timestamp_gives_none_for_anything_unusable(value: Any) -> None:
    assert parse_timestamp(value) is None


def test_parse_timestamp_keeps_the_instant_of_any_offset() -> None:
    tokyo = timezone(timedelta(hours=9))
    moment = parse_timestamp(datetime(2026, 11, 25, 0, 0, tzinfo=tokyo).isoformat())
    assert moment == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


# --- candidate_problem: what a hand-picked order must be to count ----------------------------


def test_a_stale_unacknowledged_unfilled_new_order_is_a_candidate() -> None:
    assert candidate_problem(make_order(), settings=make_settings(), now=NOW) is None


def test_age_exactly_at_the_timeout_is_a_candidate_one_second_younger_is_not() -> None:
    settings = make_settings(new_timeout_seconds=45)
    assert candidate_problem(make_order(created_at=ago(45)), settings=settings, now=NOW) is None
    young = candidate_problem(make_order(created_at=ago(44)), settings=settings, now=NOW)
    assert young is NotCandidate.TOO_YOUNG
    almost = candidate_problem(make_order(created_at=ago(44.999)), settings=settings, now=NOW)
    assert almost is NotCandidate.TOO_YOUNG


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": "SUBMITTED"}, NotCandidate.NOT_NEW),
        ({"status": "CANCELED"}, NotCandidate.NOT_NEW),
        ({"ib_order_id": 5001}, NotCandidate.ACKNOWLEDGED),
        ({"ib_perm_id": 900001}, NotCandidate.ACKNOWLEDGED),
        ({"ib_order_id": 0}, NotCandidate.ACKNOWLEDGED),
        ({"filled_quantity": 1.0}, NotCandidate.FILLED),
        ({"filled_quantity": 0.0001}, NotCandidate.FILLED),
        ({"params": {"intent_only": True}}, NotCandidate.INTENT_ONLY),
        # The SQL filter reads the JSON string "true" as true on both engines; so does this.
        ({"params": {"intent_only": "true"}}, NotCandidate.INTENT_ONLY),
        ({"created_at": ago(10)}, NotCandidate.TOO_YOUNG),
    ],
)
def test_candidate_problem_names_each_reason(fields: dict[str, Any], expected: NotCandidate) -> None:
    assert candidate_problem(make_order(**fields), settings=make_settings(), now=NOW) is expected


@pytest.mark.parametrize(
    "fields",
    [
        {"filled_quantity": None},
        {"filled_quantity": 0},
        {"params": {"intent_only": False}},
        {"params": {"intent_only": "false"}},
        {"params": {"intent_only": None}},
    ],
)
def test_an_unfilled_order_not_marked_intent_only_is_a_candidate(fields: dict[str, Any]) -> None:
    assert candidate_problem(make_order(**fields), settings=make_settings(), now=NOW) is None


def test_candidate_problem_checks_in_the_selectors_order() -> None:
    everything = make_order(
        status="SUBMITTED",
        ib_order_id=5001,
        filled_quantity=3.0,
        params={"intent_only": True},
        created_at=ago(1),
    )
    settings = make_settings()
    seen = []
    for clear in (
        {},
        {"status": "NEW"},
        {"ib_order_id": None},
        {"filled_quantity": 0.0},
        {"params": {}},
        {"created_at": ago(600)},
    ):
        everything = replace(everything, **clear)
        seen.append(candidate_problem(everything, settings=settings, now=NOW))
    assert seen == [
        NotCandidate.NOT_NEW,
        NotCandidate.ACKNOWLEDGED,
        NotCandidate.FILLED,
        NotCandidate.INTENT_ONLY,
        NotCandidate.TOO_YOUNG,
        None,
    ]


def test_not_found_and_changed_meanwhile_belong_to_the_services_not_to_the_row() -> None:
    # candidate_problem judges a row it has; the two remaining codes need the database.
    from_the_row = {
        NotCandidate.NOT_NEW,
        NotCandidate.ACKNOWLEDGED,
        NotCandidate.FILLED,
        NotCandidate.INTENT_ONLY,
        NotCandidate.TOO_YOUNG,
    }
    assert set(NotCandidate) == from_the_row | {NotCandidate.NOT_FOUND, NotCandidate.CHANGED_MEANWHILE}
    assert {c.value for c in NotCandidate} == {
        "not_new",
        "acknowledged",
        "filled",
        "too_young",
        "intent_only",
        "not_found",
        "changed_meanwhile",
    }


# --- the codes -------------------------------------------------------------------------------


def test_reason_codes_are_the_strings_of_the_design() -> None:
    assert [r.value for r in TABLE] + ["replaced"] == [
        "disabled",
        "blackout",
        "clock_skew",
        "ib_unreachable",
        "broker_evidence_unavailable",
        "guard_halted",
        "owned_by_backend",
        "open_at_broker",
        "submit_in_flight",
        "closed_at_broker",
        "invalid_order",
        "retries_exhausted",
        "stale_intent",
        "outside_rth",
        "quote_unavailable",
        "price_deviation",
        "replaced",
    ]
    assert {Reason.CIRCUIT_OPEN.value, Reason.CHANGED_CONCURRENTLY.value, Reason.WRITE_FAILED.value} == {
        "circuit_open",
        "changed_concurrently",
        "write_failed",
    }
    assert {a.value for a in Action} == {"replace", "cancel", "skip"}


# --- rule 7c: an order of a finished run ---------------------------------------------------


def test_row_7c_a_run_order_is_only_cancelled_by_default() -> None:
    decision = run(settings=AutoRecoveryConfig())  # replace_run_orders off, as shipped
    assert_cancel(decision, Reason.RUN_ORDER_NOT_REPLACED)
    assert "replace_run_orders is off" in (decision.detail or "")
    assert_replaced(run(make_order(run_id=None, run_status=None), settings=AutoRecoveryConfig()))


def test_row_7c_comes_after_stale_intent_and_before_outside_rth() -> None:
    yesterday = ago(86400 + 120)
    assert_cancel(
        run(make_order(created_at=yesterday, updated_at=yesterday), settings=AutoRecoveryConfig()),
        Reason.STALE_INTENT,
    )
    assert_cancel(
        run(gates=make_gates(market_open=False), settings=AutoRecoveryConfig()), Reason.RUN_ORDER_NOT_REPLACED
    )


RESUMABLE = RunPlacement(decision_snapshot_id=12)


@pytest.mark.parametrize(
    ("placement", "config", "replaced", "words"),
    [
        # The backend's resume is on by default, one child: the run's remainder is its to send.
        (RESUMABLE, {}, False, "partial resume is on (attempt 1 of 1)"),
        (RunPlacement(decision_snapshot_id=12, auto_resume={"child_run_id": 31}), {}, False, "child run 31"),
        # Off in the settings, or in the run's own params.auto_recovery (which win there).
        (RESUMABLE, {"auto_resume_partial_remaining": False}, True, None),
        (
            RunPlacement(decision_snapshot_id=12, auto_recovery={"auto_resume_partial_remaining": "off"}),
            {},
            True,
            None,
        ),
        (
            RunPlacement(decision_snapshot_id=12, auto_recovery={"auto_resume_partial_remaining": True}),
            {"auto_resume_partial_remaining": False},
            False,
            "partial resume is on",
        ),
        # Used up: the run is itself the last child, or the backend said so.
        (RunPlacement(decision_snapshot_id=12, auto_resume_attempt=1), {}, True, None),
        (
            RunPlacement(decision_snapshot_id=12, auto_resume_attempt="1"),
            {"auto_resume_partial_max_attempts": 2},
            False,
            "attempt 2 of 2",
        ),
        (RunPlacement(decision_snapshot_id=12, auto_resume={"skipped": "attempt_limit"}), {}, True, None),
        # No decision snapshot: the backend never resumes such a run.
        (RunPlacement(decision_snapshot_id=None), {}, True, None),
        # An attempt it cannot read counts as 0 there: the first resume is still to come.
        (RunPlacement(decision_snapshot_id=12, auto_resume_attempt="x"), {}, False, "attempt 1 of 1"),
    ],
)
def test_row_7c_a_run_order_is_re_placed_only_when_its_partial_resume_is_off_or_used_up(
    placement: RunPlacement, config: dict, replaced: bool, words: str | None
) -> None:
    decision = run(make_order(run=placement), settings=make_settings(**config_values(config)))
    if replaced:
        assert_replaced(decision)
    else:
        assert_cancel(decision, Reason.RUN_ORDER_NOT_REPLACED)
        assert words in (decision.detail or "")


def config_values(raw: dict) -> dict:
    """The settings as config_parse would give them for the backend's resume keys in `raw`."""
    parsed = resume_parse(raw)
    return {
        "auto_resume_partial_remaining": parsed["auto_resume_partial_remaining"],
        "auto_resume_partial_max_attempts": parsed["auto_resume_partial_max_attempts"],
    }


# --- rule 10b: the backend's sender would not take the replacement ---------------------------


@pytest.mark.parametrize(
    ("sender", "words"),
    [
        (None, "not checked"),
        (SenderState(api_mode="mock", mode="paper"), "api_mode is 'mock'"),
        (
            SenderState(
                api_mode="ib", mode="paper", blocked="the gateway health file says 'gateway_restarting'"
            ),
            "gateway_restarting",
        ),
        (SenderState(api_mode="ib", mode="live"), "the order is 'paper', ib_settings is 'live'"),
        (SenderState(api_mode="ib", mode="paper", waiting="replacement 9 has waited 75 s"), "waited 75 s"),
    ],
)
def test_row_10b_an_order_the_backend_would_not_send_again_stays_new(
    sender: SenderState | None, words: str
) -> None:
    decision = run(gates=make_gates(sender=sender))
    assert_skip(decision, Reason.BACKEND_SENDER_UNAVAILABLE)
    assert words in (decision.detail or "")


def test_row_10b_only_holds_back_what_would_be_re_placed() -> None:
    mock = make_gates(sender=SenderState(api_mode="mock", mode="paper"))
    # Cancel-only rows are not the sender's business: api_mode 'mock' still cancels them.
    assert_cancel(run(make_order(side="HOLD"), mock), Reason.INVALID_ORDER)
    assert_cancel(run(gates=make_gates(market_open=False, sender=mock.sender)), Reason.OUTSIDE_RTH)
    assert_cancel(run(gates=make_gates(quotes={"AAPL": 150.0}, sender=mock.sender)), Reason.PRICE_DEVIATION)
    # And it comes after every rule that would cancel: the order row decides first.
    assert_skip(run(gates=mock), Reason.BACKEND_SENDER_UNAVAILABLE)


def test_row_10b_reads_the_mode_as_the_backends_loop_does() -> None:
    assert_replaced(
        run(make_order(mode="Paper "), make_gates(sender=SenderState(api_mode=" IB", mode="PAPER")))
    )
    assert_replaced(run(make_order(mode=""), make_gates(sender=SenderState(api_mode="ib", mode=""))))


@pytest.mark.parametrize(("ahead", "problem"), [(0, False), (149, False), (150, True), (151, True)])
def test_the_loops_queue_admits_a_replacement_with_fewer_than_150_rows_ahead(
    ahead: int, problem: bool
) -> None:
    text = SenderQueue(ahead).problem()
    assert (text is not None) is problem
    if problem:
        assert f"{ahead} rows with no run are NEW or REJECTED ahead" in text and "the oldest 200" in text


def test_the_loops_queue_grows_with_each_replacement_and_each_direct_order_left_new() -> None:
    queue = SenderQueue(140)
    queue.written(replaced=True)  # a replacement joins at the end
    queue.written(replaced=False, kept=True)  # a direct order the sweep meant to cancel stays
    queue.written(replaced=False)  # a run order cancelled only: its run's, never in the queue
    assert queue.ahead == 142
