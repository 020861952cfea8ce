"""The Lean bridge's snapshot files: quotes.json (rules 9-10) and open_orders.json (rule 4).

A file that cannot be trusted gives no data and a problem code, never an exception:
a bad bridge file must not stop the sweep (docs/design.md, "Guarantees").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from recovery.db.timestamps import iso_parse

QUOTES_FILE = "quotes.json"
OPEN_ORDERS_FILE = "open_orders.json"
POSITIONS_FILE = "positions.json"

PROBLEM_MISSING = "missing"
PROBLEM_UNREADABLE = "unreadable"
PROBLEM_INVALID_JSON = "invalid_json"
PROBLEM_BAD_SHAPE = "bad_shape"
PROBLEM_MARKED_STALE = "marked_stale"
PROBLEM_NO_TIMESTAMP = "no_timestamp"
PROBLEM_TOO_OLD = "too_old"
PROBLEM_FUTURE_TIMESTAMP = "future_timestamp"

# The first key present decides: refreshed_at is when the bridge last confirmed the data.
TIMESTAMP_KEYS = ("refreshed_at", "updated_at")
PRICE_KEYS = ("last", "close", "bid", "ask")

MSG_NAIVE_NOW = "now must be timezone-aware, got the naive datetime {now!r}"


@dataclass(frozen=True)
class QuotesSnapshot:
    available: bool
    problem: str | None
    age_seconds: float | None
    prices: Mapping[str, float]
    skipped_items: int

    def price_for(self, symbol: str) -> float | None:
        if not self.available:
            return None
        return self.prices.get(symbol_key(symbol))


@dataclass(frozen=True)
class OpenOrdersSnapshot:
    available: bool
    problem: str | None
    age_seconds: float | None
    tags: frozenset[str]
    skipped_items: int

    def lists(self, client_order_id: str) -> bool:
        return self.available and client_order_id.strip() in self.tags


@dataclass(frozen=True)
class PositionsSnapshot:
    available: bool
    problem: str | None
    quantities: Mapping[str, float]  # by symbol_key; a symbol not listed holds 0


@dataclass(frozen=True)
class _Envelope:
    items: list[object]
    problem: str | None
    age_seconds: float | None


def quotes_read(*, root: Path, now: datetime, max_age_seconds: int) -> QuotesSnapshot:
    envelope = _envelope_read(path=root / QUOTES_FILE, now=now, max_age_seconds=max_age_seconds)
    prices: dict[str, float] = {}
    skipped = 0
    for item in envelope.items:
        quote = _quote_parse(item)
        if quote is None:
            skipped += 1
        elif quote[1] is not None:
            # A symbol listed twice keeps its first usable price.
            prices.setdefault(quote[0], quote[1])
    return QuotesSnapshot(
        available=envelope.problem is None,
        problem=envelope.problem,
        age_seconds=envelope.age_seconds,
        prices=MappingProxyType(prices),
        skipped_items=skipped,
    )


def open_orders_read(*, root: Path, now: datetime, max_age_seconds: int) -> OpenOrdersSnapshot:
    envelope = _envelope_read(path=root / OPEN_ORDERS_FILE, now=now, max_age_seconds=max_age_seconds)
    tags: set[str] = set()
    skipped = 0
    for item in envelope.items:
        tag = item.get("tag") if isinstance(item, dict) else None
        if isinstance(tag, str) and tag.strip():
            tags.add(tag.strip())
        else:
            skipped += 1
    return OpenOrdersSnapshot(
        available=envelope.problem is None,
        problem=envelope.problem,
        age_seconds=envelope.age_seconds,
        tags=frozenset(tags),
        skipped_items=skipped,
    )


def positions_read(*, root: Path, now: datetime, max_age_seconds: int) -> PositionsSnapshot:
    """The account's positions from a fresh positions.json (items: symbol, quantity or position)."""
    envelope = _envelope_read(path=root / POSITIONS_FILE, now=now, max_age_seconds=max_age_seconds)
    quantities: dict[str, float] = {}
    for item in envelope.items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("symbol"), str)
            or not item["symbol"].strip()
        ):
            continue
        raw = item.get("quantity") if item.get("quantity") is not None else item.get("position")
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            continue
        try:
            quantities[symbol_key(item["symbol"])] = float(raw)
        except ValueError:
            continue
    return PositionsSnapshot(envelope.problem is None, envelope.problem, quantities)


def _envelope_read(*, path: Path, now: datetime, max_age_seconds: int) -> _Envelope:
    """The file's items when it can be trusted; otherwise no items and the problem."""
    if now.utcoffset() is None:
        raise ValueError(MSG_NAIVE_NOW.format(now=now))
    payload, problem = _json_load(path)
    if problem is not None:
        return _Envelope(items=[], problem=problem, age_seconds=None)
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        return _Envelope(items=[], problem=PROBLEM_BAD_SHAPE, age_seconds=None)
    # Only an explicit false (or no key) means fresh; "stale": "no" or null is not trusted.
    stale = payload.get("stale", False)
    if stale is not False:
        problem = PROBLEM_MARKED_STALE if stale is True else PROBLEM_BAD_SHAPE
        return _Envelope(items=[], problem=problem, age_seconds=None)
    stamp = _timestamp_get(payload)
    if stamp is None:
        return _Envelope(items=[], problem=PROBLEM_NO_TIMESTAMP, age_seconds=None)
    age = (now - stamp).total_seconds()
    problem = _age_problem(age=age, max_age_seconds=max_age_seconds)
    return _Envelope(items=[] if problem else payload["items"], problem=problem, age_seconds=age)


def _json_load(path: Path) -> tuple[object, str | None]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, PROBLEM_MISSING
    except OSError:
        return None, PROBLEM_UNREADABLE
    try:
        return json.loads(raw), None
    # ValueError covers JSONDecodeError and bytes that are not UTF-8/16/32;
    # RecursionError a pathologically nested file.
    except (ValueError, RecursionError):
        return None, PROBLEM_INVALID_JSON


def _timestamp_get(payload: dict[str, object]) -> datetime | None:
    for key in TIMESTAMP_KEYS:
        value = payload.get(key)
        if value is not None:
            return iso_parse(value)
    return None


def _age_problem(*, age: float, max_age_seconds: int) -> str | None:
    if age > max_age_seconds:
        return PROBLEM_TOO_OLD
    # A clock skew beyond the limit is not trusted either.
    if age < -max_age_seconds:
        return PROBLEM_FUTURE_TIMESTAMP
    return None


def symbol_key(symbol: str) -> str:
    """How symbols compare: stripped and upper-case (the bridge writes ' msft' too)."""
    return symbol.strip().upper()


def _quote_parse(item: object) -> tuple[str, float | None] | None:
    """(SYMBOL, price or None) for a well-formed item; None for a malformed one."""
    if not isinstance(item, dict):
        return None
    symbol, data = item.get("symbol"), item.get("data")
    if not isinstance(symbol, str) or not symbol.strip() or not isinstance(data, dict):
        return None
    prices = (_price_parse(data.get(key)) for key in PRICE_KEYS)
    return symbol_key(symbol), next((price for price in prices if price is not None), None)


def _price_parse(value: object) -> float | None:
    # bool is an int subclass: true must not read as a price of 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        price = float(value)
    except OverflowError:  # a JSON integer beyond float range
        return None
    return price if math.isfinite(price) and price > 0 else None
