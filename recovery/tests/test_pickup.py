"""A replacement's pickup by the backend and a chain's double, in words (pure: no database)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from recovery.sweep.pickup import (
    PICKUP_GRACE_SECONDS,
    OrderFacts,
    Stage,
    came_back,
    direct_retry_pending,
    double_get,
    earlier_client_ids,
    live,
    pickup_get,
    replacement_origin,
    submit_pending,
)

NOW = dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)
CHAIN = {
    "attempts": 1,
    "origin_order_id": 7,
    "origin_client_order_id": "o-7",
    "root_order_id": 7,
    "root_client_order_id": "o-7",
}
WRITTEN = {"direct_retry": {"pending": True, "reason": "auto_recovery", "count": 0}, "auto_recovery": CHAIN}


_WRITTEN = object()


def replacement(*, status: str = "NEW", params: Any = _WRITTEN, age: float = 40, **fields: Any) -> OrderFacts:
    return OrderFacts(
        id=8,
        client_order_id="o-7-r1",
        status=status,
        params=WRITTEN if params is _WRITTEN else params,
        created_at=NOW - dt.timedelta(seconds=age),
        quantity=10.0,
        **fields,
    )


def with_params(**extra: Any) -> dict[str, Any]:
    return {**WRITTEN, **extra}


def test_just_written_waits_for_the_sender_and_says_how_long_ago() -> None:
    pickup = pickup_get(replacement(age=40), now=NOW)
    assert (pickup.stage, pickup.incident) == (Stage.WAITING, False)
    assert pickup.label == "waiting for the backend's sender (written 40 s ago)"
    assert pickup.code == "status NEW; direct_retry.pending=true count=0"


def test_not_picked_up_past_the_grace_is_an_incident() -> None:
    pickup = pickup_get(replacement(age=PICKUP_GRACE_SECONDS), now=NOW)
    assert (pickup.stage, pickup.incident) == (Stage.NOT_PICKED_UP, True)
    assert pickup.label == (
        "not picked up by the backend's sender, written 2 min ago: its direct-order loop is not running"
    )
    assert pickup_get(replacement(age=PICKUP_GRACE_SECONDS - 1), now=NOW).stage is Stage.WAITING


def test_picked_up_by_the_leader_bridge_waits_for_the_bridge() -> None:
    params = with_params(
        direct_retry={"pending": False, "count": 1, "last_reason": "submitted", "reason": "auto_recovery"},
        submit_command={
            "pending": True,
            "command_id": "cmd-1",
            "requested_at": "2026-11-24T15:59:50Z",
            "expires_at": "2026-11-24T16:01:50Z",
            "source": "leader_command",
        },
        broker_order_tag="o-7-r1",
    )
    pickup = pickup_get(replacement(params=params, age=300), now=NOW)
    assert (pickup.stage, pickup.incident) == (Stage.IN_FLIGHT, False)
    assert pickup.label == (
        "picked up by the backend: submit command sent, waiting for the bridge (sent 10 s ago)"
    )
    assert 'submit_command.pending=true command_id="cmd-1"' in pickup.code


def test_an_expired_command_still_pending_says_so() -> None:
    params = with_params(
        submit_command={
            "pending": "yes",
            "requested_at": "2026-11-24T15:50:00",
            "expires_at": "2026-11-24T15:52:00Z",
        }
    )
    pickup = pickup_get(replacement(params=params), now=NOW)
    assert pickup.stage is Stage.IN_FLIGHT
    assert pickup.label.endswith("(sent 10 min ago); the command expired at 15:52:00 UTC without an answer")
    assert 'submit_command.pending="yes" (true to the backend)' in pickup.code


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("client_id_busy", "no free IB client id (client_id_busy)"),
        ("launch_failed", "its executor did not start (launch_failed)"),
        ("auto_retry_error", "an error in its retry loop (auto_retry_error)"),
        ("something_new", "something_new"),
    ],
)
def test_a_failed_launch_says_when_the_backend_retries_and_why(reason: str, words: str) -> None:
    retry = {"pending": True, "count": 2, "last_reason": reason, "next_retry_at": "2026-11-24T16:00:40Z"}
    pickup = pickup_get(replacement(params=with_params(direct_retry=retry), age=600), now=NOW)
    assert (pickup.stage, pickup.incident) == (Stage.RETRY, False)
    assert pickup.label == f"the backend will retry at 16:00:40 UTC ({words})"
    assert 'count=2 last_reason="' in pickup.code


def test_a_retry_already_due_or_without_a_time() -> None:
    due = {
        "pending": True,
        "count": 1,
        "last_reason": "launch_failed",
        "next_retry_at": "2026-11-24T15:59:00Z",
    }
    label = pickup_get(replacement(params=with_params(direct_retry=due)), now=NOW).label
    assert label == (
        "the backend's retry was due at 15:59:00 UTC (its executor did not start (launch_failed)): "
        "it retries on its next pass"
    )
    undated = {"pending": 1, "count": "3", "last_reason": "client_id_busy", "next_retry_at": "soon"}
    label = pickup_get(replacement(params=with_params(direct_retry=undated)), now=NOW).label
    assert label == "the backend will retry on its next pass (no free IB client id (client_id_busy))"
    tomorrow = {"pending": True, "count": 1, "next_retry_at": "2026-11-25T09:30:00Z"}
    label = pickup_get(replacement(params=with_params(direct_retry=tomorrow)), now=NOW).label
    assert label == "the backend will retry at 2026-11-25 09:30:00 UTC (no reason given)"


def test_sent_by_the_bridge_or_the_executor_the_broker_has_it() -> None:
    via_bridge = with_params(submit_command={"pending": False, "status": "submitted", "command_id": "c"})
    pickup = pickup_get(replacement(status="SUBMITTED", params=via_bridge), now=NOW)
    assert (pickup.stage, pickup.label, pickup.incident) == (
        Stage.SENT,
        "sent: the broker has it (SUBMITTED)",
        False,
    )
    assert 'status="submitted"' in pickup.code
    partial = pickup_get(replacement(status="PARTIALLY_FILLED", filled_quantity=3.0), now=NOW)
    assert partial.label == "sent: partly filled at the broker, 3 of 10 (PARTIALLY_FILLED)"
    filled = pickup_get(replacement(status="filled", filled_quantity=10.0), now=NOW)
    assert (filled.stage, filled.label) == (Stage.FILLED, "filled at the broker (FILLED, 10 of 10)")


@pytest.mark.parametrize("answer", ["place_failed", "not_connected", "expired", "invalid"])
def test_rejected_by_the_bridge_is_an_incident_and_names_its_answer(answer: str) -> None:
    params = with_params(
        submit_command={"pending": False, "status": answer, "command_id": "c"},
        direct_retry={"pending": False, "count": 1, "last_reason": "submitted"},
        reason=answer,
    )
    pickup = pickup_get(replacement(status="REJECTED", params=params), now=NOW)
    assert (pickup.stage, pickup.label, pickup.incident) == (
        Stage.REJECTED,
        f"rejected by the bridge: {answer}",
        True,
    )


def test_rejected_with_the_bridges_error_text_and_by_the_backend_itself() -> None:
    sent = {"pending": False, "count": 1, "last_reason": "submitted"}
    params = with_params(
        direct_retry=sent,
        submit_command={"pending": False, "status": "place_failed"},
        reason="Order size too small",
    )
    label = pickup_get(replacement(status="REJECTED", params=params), now=NOW).label
    assert label == "rejected by the bridge: place_failed (Order size too small)"
    params = with_params(direct_retry=sent)
    plain = pickup_get(replacement(status="REJECTED", params=params, rejected_reason="risk check"), now=NOW)
    assert (plain.label, plain.incident) == ("rejected by the backend: risk check", True)
    bare = pickup_get(replacement(status="REJECTED", params={"direct_retry": {"pending": False}}), now=NOW)
    assert bare.label == "rejected by the backend: no reason given"


def test_rejected_after_a_fill_is_no_incident_and_rejected_with_a_retry_pending_retries() -> None:
    sent = with_params(direct_retry={"pending": False, "count": 1, "last_reason": "submitted"})
    filled = pickup_get(replacement(status="REJECTED", params=sent, filled_quantity=2.0), now=NOW)
    assert (filled.label, filled.incident) == (
        "rejected after a partial fill of 2 of 10: the broker had it",
        False,
    )
    retry = {
        "pending": True,
        "count": 1,
        "last_reason": "auto_retry_error",
        "next_retry_at": "2026-11-24T16:00:20Z",
    }
    again = pickup_get(replacement(status="REJECTED", params=with_params(direct_retry=retry)), now=NOW)
    assert (again.stage, again.incident) == (Stage.RETRY, False)
    assert (
        again.label
        == "rejected; the backend will retry at 16:00:20 UTC (an error in its retry loop (auto_retry_error))"
    )


def test_skipped_by_the_backend_never_sent_is_an_incident() -> None:
    pickup = pickup_get(replacement(status="SKIPPED", age=90), now=NOW)
    assert (pickup.stage, pickup.label, pickup.incident) == (
        Stage.SKIPPED,
        "skipped by the backend: never sent",
        True,
    )
    after_fill = pickup_get(replacement(status="SKIPPED", filled_quantity=1.0), now=NOW)
    assert after_fill.incident is False and "partial fill of 1 of 10" in after_fill.label


def test_cancelled_by_auto_recovery_or_by_someone_else() -> None:
    ours = pickup_get(replacement(status="CANCELED", params=with_params(auto_recovery_cancel=True)), now=NOW)
    assert (ours.stage, ours.label, ours.incident) == (
        Stage.CANCELLED,
        "cancelled by auto-recovery: it went stale too",
        False,
    )
    theirs = pickup_get(replacement(status="CANCELLED"), now=NOW)
    assert theirs.label == "cancelled by the backend or the broker (CANCELLED)"


def test_the_bridge_answered_and_the_row_still_says_new() -> None:
    sent = with_params(
        direct_retry={"pending": False, "count": 1}, submit_command={"pending": "0", "status": "submitted"}
    )
    pickup = pickup_get(replacement(params=sent), now=NOW)
    assert pickup.stage is Stage.ANSWERED and pickup.label.startswith("the bridge sent it (submitted)")
    failed = with_params(
        direct_retry={"pending": False}, submit_command={"pending": False, "status": "Not_Connected "}
    )
    assert pickup_get(replacement(params=failed), now=NOW).label.startswith(
        "rejected by the bridge: not_connected;"
    )
    odd = with_params(
        direct_retry={"pending": False}, submit_command={"pending": False, "status": "superseded"}
    )
    assert (
        pickup_get(replacement(params=odd), now=NOW).label
        == "the bridge answered 'superseded'; the row still says NEW"
    )


# --- odd params: as the backend reads them ------------------------------------------------------


@pytest.mark.parametrize("value", [True, 1, "false", "no", "0", [0], {"x": 1}, 0.5])
def test_direct_retry_pending_is_pythons_truthiness(value: Any) -> None:
    """The backend's loop reads bool(meta.get("pending")): the string "false" is pending there."""
    assert direct_retry_pending(value) is True
    pickup = pickup_get(replacement(params=with_params(direct_retry={"pending": value})), now=NOW)
    assert pickup.stage is Stage.WAITING
    if not isinstance(value, bool):
        assert "(true to the backend)" in pickup.code


@pytest.mark.parametrize("value", [False, 0, 0.0, "", None, [], {}])
def test_direct_retry_not_pending_leaves_it_to_nobody(value: Any) -> None:
    assert direct_retry_pending(value) is False
    pickup = pickup_get(replacement(params=with_params(direct_retry={"pending": value}), age=30), now=NOW)
    assert (pickup.stage, pickup.incident) == (Stage.NOT_HANDED, False)
    assert pickup.label == (
        "nothing will send it: direct_retry is not pending and no submit command is in flight "
        "(written 30 s ago)"
    )
    late = pickup_get(replacement(params=with_params(direct_retry={"pending": value}), age=600), now=NOW)
    assert (late.stage, late.incident) == (Stage.NOT_HANDED, True)


@pytest.mark.parametrize(
    ("value", "pending"),
    [
        (True, True),
        ("1", True),
        (1, True),
        ("TRUE", True),
        (" yes ", True),
        ("Y", True),
        ("on", True),
        (False, False),
        ("false", False),
        ("0", False),
        (0, False),
        (1.0, False),  # str(1.0) is "1.0": not one of the backend's words
        ("pending", False),
        (None, False),
        ([1], False),
    ],
)
def test_submit_command_pending_is_the_backends_as_bool(value: Any, pending: bool) -> None:
    assert submit_pending(value) is pending
    params = with_params(direct_retry={"pending": False, "count": 1}, submit_command={"pending": value})
    stage = pickup_get(replacement(params=params), now=NOW).stage
    assert stage is (Stage.IN_FLIGHT if pending else Stage.NOT_HANDED)


@pytest.mark.parametrize("params", [None, [], "x", 5, ["direct_retry"]])
def test_params_that_are_not_an_object(params: Any) -> None:
    pickup = pickup_get(replacement(params=params, age=10), now=NOW)
    assert pickup.stage is Stage.NOT_HANDED
    assert pickup.label == "nothing will send it: its params are not a JSON object (written 10 s ago)"
    assert "not an object" in pickup.code
    assert replacement_origin(params) is None and earlier_client_ids(replacement(params=params)) == []


@pytest.mark.parametrize("retry", ["pending", ["pending", True], 7])
def test_a_direct_retry_that_is_not_an_object(retry: Any) -> None:
    """The backend's dict(params.get("direct_retry") or {}) fails on these: its loop cannot send it."""
    pickup = pickup_get(replacement(params=with_params(direct_retry=retry), age=200), now=NOW)
    assert (pickup.stage, pickup.incident) == (Stage.NOT_HANDED, True)
    assert "its direct_retry is not an object the backend can read" in pickup.label
    assert "(not an object)" in pickup.code


def test_missing_keys_and_a_missing_direct_retry() -> None:
    bare = pickup_get(replacement(params={"auto_recovery": CHAIN}), now=NOW)
    assert bare.stage is Stage.NOT_HANDED and bare.code == "status NEW; no direct_retry"
    empty = pickup_get(replacement(params=with_params(direct_retry={})), now=NOW)
    assert empty.stage is Stage.NOT_HANDED
    tried = pickup_get(
        replacement(params=with_params(direct_retry={"pending": True, "last_at": "x"})), now=NOW
    )
    assert tried.stage is Stage.RETRY  # stamped by the loop: picked up, whatever the count says
    untried = pickup_get(
        replacement(params=with_params(direct_retry={"pending": True, "count": "0"})), now=NOW
    )
    assert untried.stage is Stage.WAITING


def test_a_replacement_with_a_run_is_not_the_direct_loops() -> None:
    pickup = pickup_get(replacement(run_id=55, age=500), now=NOW)
    assert (pickup.stage, pickup.incident) == (Stage.NOT_HANDED, True)
    assert "it belongs to run 55" in pickup.label


def test_an_unknown_or_empty_status() -> None:
    assert pickup_get(replacement(status="PENDING_SUBMIT"), now=NOW).label == (
        "status PENDING_SUBMIT: not one this page knows"
    )
    assert pickup_get(replacement(status=None), now=NOW).stage is Stage.UNKNOWN


def test_a_created_at_in_the_future_or_missing() -> None:
    assert (
        pickup_get(replacement(age=-5), now=NOW).label
        == "waiting for the backend's sender (written just now)"
    )
    facts = OrderFacts(id=1, client_order_id="x", status="NEW", params=WRITTEN)
    assert pickup_get(facts, now=NOW).label == "waiting for the backend's sender (written just now)"


# --- the chain and its double --------------------------------------------------------------------


def original(status: str = "CANCELED", **fields: Any) -> OrderFacts:
    params = {"auto_recovery_cancel": True, "auto_recovery": {"last_action": "replace"}}
    return OrderFacts(id=7, client_order_id="o-7", status=status, params=params, **fields)


def test_replacement_origin_and_the_earlier_orders_of_its_chain() -> None:
    assert replacement_origin(WRITTEN) == 7
    assert replacement_origin({"auto_recovery": {"origin_order_id": "7"}}) is None
    assert replacement_origin({"auto_recovery": "x"}) is None
    third = OrderFacts(
        id=30,
        client_order_id="root-r3",
        status="NEW",
        params={
            "auto_recovery": {**CHAIN, "attempts": 3, "root_order_id": 1, "root_client_order_id": "root"}
        },
    )
    assert earlier_client_ids(third) == ["root", "root-r1", "root-r2"]
    assert earlier_client_ids(original()) == []


@pytest.mark.parametrize(
    ("fields", "back"),
    [
        ({"status": "CANCELED"}, False),
        ({"status": "REJECTED"}, False),
        ({"status": "SUBMITTED"}, True),
        ({"status": "partially_filled"}, True),
        ({"status": "PARTIAL"}, True),
        ({"status": "FILLED"}, True),
        ({"status": "CANCELED", "ib_order_id": 555}, True),
        ({"status": "CANCELED", "filled_quantity": 2.0}, True),
        ({"status": "CANCELED", "filled_quantity": float("nan")}, False),
    ],
)
def test_came_back_to_life(fields: dict[str, Any], back: bool) -> None:
    assert came_back(original(**fields)) is back


@pytest.mark.parametrize(
    ("status", "is_live"),
    [
        ("NEW", True),
        ("SUBMITTED", True),
        ("FILLED", True),
        ("CANCELED", False),
        ("rejected", False),
        ("SKIPPED", False),
    ],
)
def test_a_live_replacement(status: str, is_live: bool) -> None:
    assert live(replacement(status=status)) is is_live


def test_a_double_names_both_orders_in_words() -> None:
    double = double_get(replacement(), [original("SUBMITTED", ib_order_id=555)])
    assert double is not None
    assert double.text == (
        "Both the original and its replacement may be at the broker: #7 (o-7) is SUBMITTED again "
        "(broker id 555) after auto-recovery cancelled it, and its replacement #8 (o-7-r1) is NEW."
    )
    filled = double_get(replacement(status="FILLED"), [original(filled_quantity=10.0)])
    assert filled is not None and "#7 (o-7) is CANCELED (filled 10)" in filled.text


def test_no_double_while_the_original_stays_cancelled_or_the_replacement_ended() -> None:
    assert double_get(replacement(), [original()]) is None
    assert double_get(replacement(status="REJECTED"), [original("FILLED")]) is None
    assert double_get(replacement(status="SKIPPED"), [original("SUBMITTED")]) is None
    assert double_get(replacement(), []) is None
