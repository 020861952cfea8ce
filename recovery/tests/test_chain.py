"""What a cancel and a replacement write: client ids, chain roots and params."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from recovery.sweep.chain import (
    CLIENT_ORDER_ID_MAX,
    cancelled_params,
    chain_root,
    replacement_client_order_id,
    replacement_params,
)
from recovery.sweep.placement import placement_params

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
NOW_TEXT = "2026-11-24T15:00:00Z"
SWEEP = "sweep-20261124T150000-a1b2"
DIRECT = placement_params(mode="paper", project_id=None, run_id=None, run=None)
CHAIN_KEYS = {
    "attempts",
    "origin_order_id",
    "origin_client_order_id",
    "root_order_id",
    "root_client_order_id",
    "triggered_at",
    "sweep_id",
}


def replace_params(
    original_params: Any, *, origin_id: int = 100, origin_client: str = "run7-AAPL", attempt: int = 1
):
    return replacement_params(
        original_params=original_params,
        origin_order_id=origin_id,
        origin_client_order_id=origin_client,
        attempt=attempt,
        now=NOW,
        sweep_id=SWEEP,
        placement=DIRECT,
    )


def cancel_params(original_params: Any, *, action: str = "replace", reason: str = "replaced"):
    return cancelled_params(
        original_params=original_params, action=action, reason=reason, now=NOW, sweep_id=SWEEP
    )


# --- replacement_client_order_id -------------------------------------------------------------


def test_short_root_gets_the_attempt_suffix() -> None:
    assert replacement_client_order_id(root_client_order_id="run7-AAPL", attempt=1) == "run7-AAPL-r1"
    assert replacement_client_order_id(root_client_order_id="run7-AAPL", attempt=2) == "run7-AAPL-r2"


def test_a_64_character_root_is_cut_so_the_suffix_survives() -> None:
    root = "A" * 50 + "B" * 14
    assert len(root) == CLIENT_ORDER_ID_MAX == 64
    client_id = replacement_client_order_id(root_client_order_id=root, attempt=1)
    assert len(client_id) == 64
    assert client_id.endswith("-r1")
    assert client_id == root[:61] + "-r1"


def test_attempt_10_keeps_its_whole_suffix() -> None:
    root = "x" * 64
    client_id = replacement_client_order_id(root_client_order_id=root, attempt=10)
    assert len(client_id) == 64
    assert client_id.endswith("-r10")
    assert client_id == "x" * 60 + "-r10"


@pytest.mark.parametrize(("length", "expected_length"), [(60, 63), (61, 64), (62, 64), (200, 64)])
def test_the_root_is_cut_only_when_it_must_be(length: int, expected_length: int) -> None:
    root = "".join(str(i % 10) for i in range(length))
    client_id = replacement_client_order_id(root_client_order_id=root, attempt=1)
    assert len(client_id) == expected_length
    assert client_id == root[: expected_length - 3] + "-r1"


def test_distinct_attempts_of_a_long_root_stay_distinct() -> None:
    root = "y" * 64
    ids = {replacement_client_order_id(root_client_order_id=root, attempt=n) for n in range(1, 12)}
    assert len(ids) == 11
    assert all(len(i) == 64 for i in ids)


# --- chain_root ------------------------------------------------------------------------------


def test_an_original_is_its_own_root() -> None:
    assert chain_root(order_id=100, client_order_id="run7-AAPL", params={}) == (100, "run7-AAPL")
    assert chain_root(order_id=100, client_order_id="run7-AAPL", params={"project_id": 7}) == (
        100,
        "run7-AAPL",
    )


def test_a_replacement_names_the_root_from_its_params() -> None:
    params = {"auto_recovery": {"attempts": 1, "root_order_id": 100, "root_client_order_id": "run7-AAPL"}}
    assert chain_root(order_id=250, client_order_id="run7-AAPL-r1", params=params) == (100, "run7-AAPL")


def test_a_cancelled_original_without_root_ids_is_still_its_own_root() -> None:
    params = {"auto_recovery": {"last_action": "cancel", "last_reason": "outside_rth", "sweep_id": "s0"}}
    assert chain_root(order_id=100, client_order_id="run7-AAPL", params=params) == (100, "run7-AAPL")


@pytest.mark.parametrize(
    "recovery",
    [
        None,
        "run7-AAPL",
        ["run7-AAPL"],
        42,
        {},
        {"root_order_id": 100},
        {"root_client_order_id": "run7-AAPL"},
        {"root_order_id": "100", "root_client_order_id": "run7-AAPL"},
        {"root_order_id": 100.0, "root_client_order_id": "run7-AAPL"},
        {"root_order_id": True, "root_client_order_id": "run7-AAPL"},
        {"root_order_id": None, "root_client_order_id": "run7-AAPL"},
        {"root_order_id": 100, "root_client_order_id": ""},
        {"root_order_id": 100, "root_client_order_id": 100},
        {"root_order_id": 100, "root_client_order_id": None},
    ],
)
def test_malformed_chain_ids_fall_back_to_the_order_itself(recovery: Any) -> None:
    params = {"auto_recovery": recovery}
    assert chain_root(order_id=250, client_order_id="run7-AAPL-r1", params=params) == (250, "run7-AAPL-r1")


# --- replacement_params ----------------------------------------------------------------------


def test_replacement_params_drop_execution_state_and_keep_the_rest() -> None:
    original = {
        "project_id": 7,
        "mode": "live",
        "strategy": {"name": "momentum", "weights": [0.5, 0.5]},
        "note": None,
        "open_orders": ["kept: no underscore after open_orders"],
        "orders_open_seen": 1,
        "submit_command": {"pending": True, "requested_at": "2026-11-24T14:00:00Z"},
        "auto_recovery_cancel": True,
        "direct_retry": {"count": 2},
        "sync_reason": "missing at broker",
        "open_orders_seen_at": "2026-11-24T14:00:00Z",
        "open_orders_": "empty suffix",
        "open_orders_missing_count": 3,
        # Everything that ties broker evidence to the original.
        "broker_order_tag": "run7-AAPL",
        "event_tag": "run7-AAPL",
        "event_source": "lean",
        "event_status": "SUBMITTED",
        "event_time": "2026-11-24T14:00:00Z",
        "positions_baseline": {"symbol": "AAPL", "quantity": 0},
    }
    params = replace_params(original)
    assert set(params) == {
        "project_id",
        "mode",
        "strategy",
        "note",
        "open_orders",
        "orders_open_seen",
        "auto_recovery",
        "direct_retry",
    }
    assert params["direct_retry"] == {"pending": True, "reason": "auto_recovery", "count": 0}
    for key in ("project_id", "strategy", "note", "open_orders", "orders_open_seen"):
        assert params[key] == original[key]


def test_replacement_params_of_an_original_start_the_chain() -> None:
    params = replace_params({"project_id": 7}, origin_id=100, origin_client="run7-AAPL", attempt=1)
    assert params["auto_recovery"] == {
        "attempts": 1,
        "origin_order_id": 100,
        "origin_client_order_id": "run7-AAPL",
        "root_order_id": 100,
        "root_client_order_id": "run7-AAPL",
        "triggered_at": NOW_TEXT,
        "sweep_id": SWEEP,
    }


def test_replacement_params_of_a_replacement_keep_the_root_and_name_the_origin() -> None:
    first = replace_params({"project_id": 7}, origin_id=100, origin_client="run7-AAPL", attempt=1)
    first_client = replacement_client_order_id(root_client_order_id="run7-AAPL", attempt=1)
    second = replace_params(first, origin_id=250, origin_client=first_client, attempt=2)
    assert set(second["auto_recovery"]) == CHAIN_KEYS
    assert second["auto_recovery"]["attempts"] == 2
    assert (
        second["auto_recovery"]["origin_order_id"],
        second["auto_recovery"]["origin_client_order_id"],
    ) == (
        250,
        "run7-AAPL-r1",
    )
    assert (second["auto_recovery"]["root_order_id"], second["auto_recovery"]["root_client_order_id"]) == (
        100,
        "run7-AAPL",
    )
    assert second["project_id"] == 7
    root = second["auto_recovery"]["root_client_order_id"]
    assert replacement_client_order_id(root_client_order_id=root, attempt=2) == "run7-AAPL-r2"


def test_replacement_params_replace_an_old_auto_recovery_object_whole() -> None:
    original = {
        "auto_recovery": {
            "attempts": 1,
            "root_order_id": 100,
            "root_client_order_id": "run7-AAPL",
            "last_action": "replace",
            "last_reason": "replaced",
            "last_at": "2026-11-24T14:00:00Z",
            "sweep_id": "old-sweep",
            "backend_note": "x",
        }
    }
    recovery = replace_params(original, origin_id=250, origin_client="run7-AAPL-r1", attempt=2)[
        "auto_recovery"
    ]
    assert set(recovery) == CHAIN_KEYS
    assert recovery["sweep_id"] == SWEEP
    assert recovery["triggered_at"] == NOW_TEXT


@pytest.mark.parametrize("original", [None, "not an object", ["a", "b"], 5, True])
def test_non_object_params_count_as_empty(original: Any) -> None:
    params = replace_params(original, origin_id=100, origin_client="run7-AAPL", attempt=1)
    assert set(params) == {"auto_recovery", "direct_retry", "mode"}
    assert params["auto_recovery"]["root_order_id"] == 100
    assert params["auto_recovery"]["root_client_order_id"] == "run7-AAPL"


@pytest.mark.parametrize(
    ("now", "text"),
    [
        (datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("America/New_York")), "2026-11-24T15:00:00Z"),
        (datetime(2026, 11, 25, 0, 0, tzinfo=timezone(timedelta(hours=9))), "2026-11-24T15:00:00Z"),
        (datetime(2026, 11, 24, 15, 0, 1, 250000, tzinfo=UTC), "2026-11-24T15:00:01.250000Z"),
    ],
)
def test_triggered_at_is_iso_utc_with_z(now: datetime, text: str) -> None:
    params = replacement_params(
        original_params={},
        origin_order_id=1,
        origin_client_order_id="c",
        attempt=1,
        now=now,
        sweep_id=SWEEP,
        placement=DIRECT,
    )
    assert params["auto_recovery"]["triggered_at"] == text


def test_replacement_params_do_not_touch_the_original() -> None:
    original = {
        "project_id": 7,
        "submit_command": {"pending": True},
        "auto_recovery": {"attempts": 1, "root_order_id": 100, "root_client_order_id": "run7-AAPL"},
    }
    before = copy.deepcopy(original)
    params = replace_params(original, origin_id=250, origin_client="run7-AAPL-r1", attempt=2)
    assert original == before
    assert params is not original
    assert params["auto_recovery"] is not original["auto_recovery"]


# --- cancelled_params ------------------------------------------------------------------------


def test_cancelled_params_merge_into_the_existing_auto_recovery_object() -> None:
    original = {
        "project_id": 7,
        "submit_command": {"pending": False},
        "auto_recovery": {
            "attempts": 1,
            "origin_order_id": 100,
            "origin_client_order_id": "run7-AAPL",
            "root_order_id": 100,
            "root_client_order_id": "run7-AAPL",
            "triggered_at": "2026-11-24T14:00:00Z",
            "sweep_id": "old-sweep",
        },
    }
    params = cancel_params(original, action="replace", reason="replaced")
    assert params["auto_recovery"] == {
        "attempts": 1,
        "origin_order_id": 100,
        "origin_client_order_id": "run7-AAPL",
        "root_order_id": 100,
        "root_client_order_id": "run7-AAPL",
        "triggered_at": "2026-11-24T14:00:00Z",
        "sweep_id": SWEEP,
        "last_action": "replace",
        "last_reason": "replaced",
        "last_at": NOW_TEXT,
    }
    assert params["auto_recovery_cancel"] is True
    # A cancel changes status, not the order's other params.
    assert params["project_id"] == 7
    assert params["submit_command"] == {"pending": False}


def test_cancelled_params_of_a_chain_keep_its_root() -> None:
    replacement = replace_params({}, origin_id=100, origin_client="run7-AAPL", attempt=1)
    cancelled = cancel_params(replacement, action="cancel", reason="retries_exhausted")
    assert chain_root(order_id=250, client_order_id="run7-AAPL-r1", params=cancelled) == (100, "run7-AAPL")
    assert cancelled["auto_recovery"]["attempts"] == 1


def test_cancelled_params_of_an_original_add_only_the_last_keys() -> None:
    params = cancel_params({"project_id": 7}, action="cancel", reason="outside_rth")
    assert params == {
        "project_id": 7,
        "auto_recovery": {
            "last_action": "cancel",
            "last_reason": "outside_rth",
            "last_at": NOW_TEXT,
            "sweep_id": SWEEP,
        },
        "auto_recovery_cancel": True,
    }


@pytest.mark.parametrize("recovery", [None, "garbage", [1, 2], 3])
def test_a_non_object_auto_recovery_is_replaced_by_the_last_keys(recovery: Any) -> None:
    params = cancel_params({"auto_recovery": recovery}, action="cancel", reason="invalid_order")
    assert params["auto_recovery"] == {
        "last_action": "cancel",
        "last_reason": "invalid_order",
        "last_at": NOW_TEXT,
        "sweep_id": SWEEP,
    }


@pytest.mark.parametrize("original", [None, "text", [1], 7])
def test_cancelled_params_of_non_object_params_start_from_empty(original: Any) -> None:
    assert set(cancel_params(original)) == {"auto_recovery", "auto_recovery_cancel"}


def test_an_existing_false_cancel_flag_becomes_true() -> None:
    assert cancel_params({"auto_recovery_cancel": False})["auto_recovery_cancel"] is True


def test_cancelled_params_do_not_mutate_their_input() -> None:
    original = {
        "project_id": 7,
        "auto_recovery": {"attempts": 1, "root_order_id": 100, "root_client_order_id": "run7-AAPL"},
    }
    before = copy.deepcopy(original)
    params = cancel_params(original)
    assert original == before
    assert "auto_recovery_cancel" not in original
    assert "last_action" not in original["auto_recovery"]
    assert params is not original
    assert params["auto_recovery"] is not original["auto_recovery"]
