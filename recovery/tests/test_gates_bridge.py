"""The Lean bridge files: a file that cannot be trusted gives no data, never an exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recovery.gates import bridge
from recovery.gates.bridge import (
    OPEN_ORDERS_FILE,
    QUOTES_FILE,
    open_orders_read,
    quotes_read,
)

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
NOW_ISO = "2026-11-24T15:00:00Z"
MAX_AGE = 60


def write(root: Path, name: str, payload: object) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    (root / name).write_text(text, encoding="utf-8")


def quotes(items: list[object], **envelope: object) -> dict[str, object]:
    return {"items": items, "stale": False, "updated_at": NOW_ISO, **envelope}


def quote(symbol: object, **data: object) -> dict[str, object]:
    return {"symbol": symbol, "data": data}


def read_quotes(root: Path, now: datetime = NOW) -> bridge.QuotesSnapshot:
    return quotes_read(root=root, now=now, max_age_seconds=MAX_AGE)


def read_orders(root: Path, now: datetime = NOW) -> bridge.OpenOrdersSnapshot:
    return open_orders_read(root=root, now=now, max_age_seconds=MAX_AGE)


def assert_no_data(snapshot: bridge.QuotesSnapshot, problem: str) -> None:
    assert not snapshot.available
    assert snapshot.problem == problem
    assert dict(snapshot.prices) == {}
    assert snapshot.price_for("AAPL") is None


# --- the envelope: every problem code -------------------------------------------------


def test_fresh_file_is_available(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=190.5)]))
    snapshot = read_quotes(tmp_path)
    assert snapshot.available
    assert snapshot.problem is None
    assert snapshot.age_seconds == 0
    assert snapshot.price_for("AAPL") == 190.5
    assert snapshot.skipped_items == 0


def test_missing_file(tmp_path: Path) -> None:
    snapshot = read_quotes(tmp_path)
    assert_no_data(snapshot, bridge.PROBLEM_MISSING)
    assert snapshot.age_seconds is None


def test_missing_folder(tmp_path: Path) -> None:
    assert_no_data(read_quotes(tmp_path / "nowhere"), bridge.PROBLEM_MISSING)


def test_unreadable_file_a_directory(tmp_path: Path) -> None:
    (tmp_path / QUOTES_FILE).mkdir()
    assert_no_data(read_quotes(tmp_path), bridge.PROBLEM_UNREADABLE)


@pytest.mark.parametrize("text", ['{"items": [{"symbol": "AAPL"', "", "not json", "{'items': []}"])
def test_invalid_json(tmp_path: Path, text: str) -> None:
    write(tmp_path, QUOTES_FILE, text)
    assert_no_data(read_quotes(tmp_path), bridge.PROBLEM_INVALID_JSON)


def test_bytes_that_are_not_text_are_invalid_json(tmp_path: Path) -> None:
    (tmp_path / QUOTES_FILE).write_bytes(b"\xff\xfe\xfa{")
    assert_no_data(read_quotes(tmp_path), bridge.PROBLEM_INVALID_JSON)


@pytest.mark.parametrize(
    "payload",
    [
        [{"symbol": "AAPL", "data": {"last": 1}}],  # a list at top level
        {"stale": False, "updated_at": NOW_ISO},  # no items
        {"items": {"AAPL": {"last": 1}}, "stale": False, "updated_at": NOW_ISO},  # items not a list
        {"items": None, "stale": False, "updated_at": NOW_ISO},
        "null",
        "42",
    ],
)
def test_bad_shape(tmp_path: Path, payload: object) -> None:
    write(tmp_path, QUOTES_FILE, payload)
    assert_no_data(read_quotes(tmp_path), bridge.PROBLEM_BAD_SHAPE)


def test_marked_stale(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)], stale=True))
    assert_no_data(read_quotes(tmp_path), bridge.PROBLEM_MARKED_STALE)


@pytest.mark.parametrize("stale", ["false", 0, None])
def test_stale_that_is_not_a_bool_is_not_trusted(tmp_path: Path, stale: object) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)], stale=stale))
    assert_no_data(read_quotes(tmp_path), bridge.PROBLEM_BAD_SHAPE)


def test_no_stale_key_counts_as_fresh(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, {"items": [quote("AAPL", last=1.0)], "updated_at": NOW_ISO})
    assert read_quotes(tmp_path).price_for("AAPL") == 1.0


@pytest.mark.parametrize(
    "stamps",
    [
        {},
        {"updated_at": None},
        {"updated_at": "yesterday"},
        {"updated_at": 1795000000},
        {"updated_at": ""},
        {"refreshed_at": "2026-13-01T00:00:00Z", "updated_at": NOW_ISO},
    ],
)
def test_no_timestamp(tmp_path: Path, stamps: dict[str, object]) -> None:
    write(tmp_path, QUOTES_FILE, {"items": [quote("AAPL", last=1.0)], "stale": False, **stamps})
    snapshot = read_quotes(tmp_path)
    assert_no_data(snapshot, bridge.PROBLEM_NO_TIMESTAMP)
    assert snapshot.age_seconds is None


def test_exactly_at_the_age_limit_is_fresh(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)]))
    snapshot = read_quotes(tmp_path, now=NOW + timedelta(seconds=MAX_AGE))
    assert snapshot.available
    assert snapshot.age_seconds == MAX_AGE


def test_one_second_past_the_limit_is_too_old(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)]))
    snapshot = read_quotes(tmp_path, now=NOW + timedelta(seconds=MAX_AGE + 1))
    assert_no_data(snapshot, bridge.PROBLEM_TOO_OLD)
    assert snapshot.age_seconds == MAX_AGE + 1


def test_future_timestamp_within_the_limit_is_fresh(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)]))
    snapshot = read_quotes(tmp_path, now=NOW - timedelta(seconds=MAX_AGE))
    assert snapshot.available
    assert snapshot.age_seconds == -MAX_AGE


def test_future_timestamp_beyond_the_limit(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)]))
    snapshot = read_quotes(tmp_path, now=NOW - timedelta(seconds=MAX_AGE + 1))
    assert_no_data(snapshot, bridge.PROBLEM_FUTURE_TIMESTAMP)


def test_naive_now_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="naive"):
        quotes_read(root=tmp_path, now=datetime(2026, 11, 24, 15), max_age_seconds=MAX_AGE)


# --- timestamps -------------------------------------------------------------------------


def test_refreshed_at_wins_over_updated_at(tmp_path: Path) -> None:
    old = "2026-11-24T14:00:00Z"
    write(tmp_path, QUOTES_FILE, quotes([], refreshed_at=old, updated_at=NOW_ISO))
    assert read_quotes(tmp_path).problem == bridge.PROBLEM_TOO_OLD
    write(tmp_path, QUOTES_FILE, quotes([], refreshed_at=NOW_ISO, updated_at=old))
    assert read_quotes(tmp_path).available


def test_refreshed_at_alone_is_enough(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, {"items": [], "stale": False, "refreshed_at": NOW_ISO})
    assert read_quotes(tmp_path).available


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-24T17:00:00+02:00",
        "2026-11-24T10:00:00-05:00",
        "2026-11-24T15:00:00",  # naive = UTC, as the backend writes it
        "2026-11-24 15:00:00.000000",
        "2026-11-24T15:00:00.000Z",
    ],
)
def test_offset_and_naive_timestamps_mean_the_same_instant(tmp_path: Path, stamp: str) -> None:
    write(tmp_path, QUOTES_FILE, quotes([], updated_at=stamp))
    snapshot = read_quotes(tmp_path)
    assert snapshot.available
    assert snapshot.age_seconds == 0


def test_naive_timestamp_is_not_read_as_local_time(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([], updated_at="2026-11-24T14:58:30"))
    assert read_quotes(tmp_path).age_seconds == 90


# --- quote items ------------------------------------------------------------------------


def test_symbols_are_stripped_and_upper_case(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote(" aapl ", last=190.0)]))
    snapshot = read_quotes(tmp_path)
    assert dict(snapshot.prices) == {"AAPL": 190.0}
    assert snapshot.price_for("AAPL") == 190.0
    assert snapshot.price_for("  aApL\n") == 190.0
    assert snapshot.price_for("MSFT") is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"last": 10.0, "close": 11.0, "bid": 12.0, "ask": 13.0}, 10.0),
        ({"last": 0, "close": 11.0, "bid": 12.0}, 11.0),
        ({"last": None, "close": 11.0}, 11.0),
        ({"close": -1.0, "bid": 12.0}, 12.0),
        ({"last": 0.0, "close": 0, "bid": None, "ask": 13}, 13.0),
        ({"last": True, "close": 11.0}, 11.0),
        ({"last": "190.5", "close": 11.0}, 11.0),
        ({"last": float("nan"), "close": float("inf"), "bid": 12.5}, 12.5),
        ({"last": 10**400, "close": 11.0}, 11.0),
    ],
)
def test_first_positive_of_last_close_bid_ask(
    tmp_path: Path, data: dict[str, object], expected: float
) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", **data)]))
    price = read_quotes(tmp_path).price_for("AAPL")
    assert price == expected
    assert type(price) is float


@pytest.mark.parametrize(
    "data",
    [{}, {"last": 0, "close": None}, {"last": True}, {"bid": "12"}, {"ask": float("nan")}, {"last": -5}],
)
def test_symbol_without_a_usable_price_is_absent(tmp_path: Path, data: dict[str, object]) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", **data), quote("MSFT", last=400.0)]))
    snapshot = read_quotes(tmp_path)
    assert snapshot.available
    assert "AAPL" not in snapshot.prices
    assert snapshot.price_for("AAPL") is None
    assert snapshot.price_for("MSFT") == 400.0


def test_nan_literal_in_the_file_is_rejected(tmp_path: Path) -> None:
    text = '{"items": [{"symbol": "AAPL", "data": {"last": NaN, "close": Infinity, "bid": 5}}],'
    write(tmp_path, QUOTES_FILE, text + f' "stale": false, "updated_at": "{NOW_ISO}"}}')
    assert read_quotes(tmp_path).price_for("AAPL") == 5.0


def test_malformed_items_are_skipped_and_counted(tmp_path: Path) -> None:
    items: list[object] = [
        "AAPL",
        None,
        {"symbol": 42, "data": {"last": 1.0}},
        {"symbol": "  ", "data": {"last": 1.0}},
        {"symbol": "IBM", "data": [1.0]},
        {"symbol": "IBM"},
        {"data": {"last": 1.0}},
        quote("MSFT", last=400.0),
    ]
    write(tmp_path, QUOTES_FILE, quotes(items))
    snapshot = read_quotes(tmp_path)
    assert snapshot.available
    assert snapshot.skipped_items == 7
    assert dict(snapshot.prices) == {"MSFT": 400.0}


def test_a_symbol_listed_twice_keeps_its_first_usable_price(tmp_path: Path) -> None:
    items: list[object] = [quote("AAPL", last=0), quote("aapl", last=190.0), quote("AAPL", last=191.0)]
    write(tmp_path, QUOTES_FILE, quotes(items))
    assert read_quotes(tmp_path).price_for("AAPL") == 190.0


def test_prices_cannot_be_changed_by_a_caller(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)]))
    snapshot = read_quotes(tmp_path)
    with pytest.raises(TypeError):
        snapshot.prices["AAPL"] = 2.0  # type: ignore[index]


# --- open_orders.json -------------------------------------------------------------------


def orders(items: list[object], **envelope: object) -> dict[str, object]:
    return {"items": items, "stale": False, "refreshed_at": NOW_ISO, **envelope}


def test_open_orders_lists_tags(tmp_path: Path) -> None:
    write(tmp_path, OPEN_ORDERS_FILE, orders([{"tag": "cid-1", "symbol": "AAPL"}, {"tag": " cid-2 "}]))
    snapshot = read_orders(tmp_path)
    assert snapshot.available
    assert snapshot.tags == frozenset({"cid-1", "cid-2"})
    assert snapshot.lists("cid-1")
    assert snapshot.lists("cid-2")
    assert not snapshot.lists("cid-3")
    # Client order ids are case-sensitive.
    assert not snapshot.lists("CID-1")


def test_open_orders_malformed_items_are_skipped_and_counted(tmp_path: Path) -> None:
    items: list[object] = [{"tag": "cid-1"}, {"tag": 7}, {"tag": ""}, {"symbol": "AAPL"}, "cid-2", None]
    write(tmp_path, OPEN_ORDERS_FILE, orders(items))
    snapshot = read_orders(tmp_path)
    assert snapshot.tags == frozenset({"cid-1"})
    assert snapshot.skipped_items == 5


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (None, bridge.PROBLEM_MISSING),
        ('{"items": [', bridge.PROBLEM_INVALID_JSON),
        ([{"tag": "cid-1"}], bridge.PROBLEM_BAD_SHAPE),
        (orders([{"tag": "cid-1"}], stale=True), bridge.PROBLEM_MARKED_STALE),
        ({"items": [{"tag": "cid-1"}], "stale": False}, bridge.PROBLEM_NO_TIMESTAMP),
        (orders([{"tag": "cid-1"}], refreshed_at="2026-11-24T14:58:59Z"), bridge.PROBLEM_TOO_OLD),
        (orders([{"tag": "cid-1"}], refreshed_at="2026-11-24T15:01:01Z"), bridge.PROBLEM_FUTURE_TIMESTAMP),
    ],
)
def test_open_orders_without_trust_lists_nothing(tmp_path: Path, payload: object, problem: str) -> None:
    if payload is not None:
        write(tmp_path, OPEN_ORDERS_FILE, payload)
    snapshot = read_orders(tmp_path)
    assert not snapshot.available
    assert snapshot.problem == problem
    assert snapshot.tags == frozenset()
    assert not snapshot.lists("cid-1")


def test_the_two_files_are_read_independently(tmp_path: Path) -> None:
    write(tmp_path, QUOTES_FILE, quotes([quote("AAPL", last=1.0)]))
    assert read_orders(tmp_path).problem == bridge.PROBLEM_MISSING
    assert read_quotes(tmp_path).available
