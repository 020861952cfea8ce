"""Broker evidence (pure): what the Lean processes' own files say about an order.

The backend folds these files into trade_orders only when its watchdog runs; on the days
orders sit in NEW it may not be running. So before an order is cancelled, the sweep reads
the same files (gates.evidence_read) and this module says what they mean:

- an open-orders snapshot that lists one of the order's tags: it is live at the broker;
- an execution event for one of its tags whose status says the broker accepted, is
  working or filled it, or any event with a fill: the broker has (or had) it;
- a submit-command result `submitted`: the bridge placed it; one of the reject statuses:
  the submit failed and the order may be recovered;
- a file that exists but cannot be read or understood: nothing is proven either way, so
  the order is left alone.

No file access here: the reader hands over bytes and parsed objects.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from recovery.db.timestamps import iso_parse

EVENTS_FILE = "execution_events.jsonl"
COMMAND_RESULTS_DIR = "command_results"
DIRECT_TAG_PREFIX = "direct:"
DIRECT_FOLDER_PREFIX = "direct_"

# Event statuses (compared upper-case) that mean the broker accepted, works or filled the order.
SEEN_STATUSES = frozenset(
    {"SUBMITTED", "NEW", "PARTIALLYFILLED", "PARTIAL", "FILLED", "CANCELPENDING", "PENDINGCANCEL"}
)
# Statuses that mean the broker is done with the order without a fill.
DONE_STATUSES = frozenset({"CANCELED", "CANCELLED", "INVALID", "REJECTED"})

RESULT_SUBMITTED = "submitted"
RESULT_REJECTED = frozenset(
    {
        "invalid",
        "place_failed",
        "not_connected",
        "expired",
        "parse_error",
        "symbol_invalid",
        "quantity_invalid",
        "unsupported_order_type",
        "limit_price_invalid",
    }
)

# A command id names a file: anything that could leave command_results/ is refused.
_COMMAND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")

KIND_OPEN_ORDERS = "open_orders"
KIND_EVENT = "execution_event"
KIND_COMMAND_RESULT = "command_result"
KIND_COMMAND_FILE = "command_file"
KIND_POSITION = "position"


MSG_IN_FLIGHT = "command {command} ({file}), expires {expires}"
NO_COMMAND_ID = "without a command_id"
NO_COMMAND_FILE = "no file named in the order's params"


def in_flight_text(*, command_id: str | None, path: str | None, expires: datetime | None) -> str:
    """What holds an order in flight (rule 5), as ops search for it: command, file, expiry."""
    when = expires.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if expires is not None else "unknown"
    return MSG_IN_FLIGHT.format(
        command=command_id or NO_COMMAND_ID, file=path or NO_COMMAND_FILE, expires=when
    )


@dataclass(frozen=True)
class Sighting:
    """One piece of evidence: where it was read and what it says."""

    kind: str
    path: str
    tag: str | None = None
    status: str | None = None
    time: str | None = None
    filled: float | None = None
    command_id: str | None = None  # a command file's command_id

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def describe(self) -> str:
        if self.kind == KIND_OPEN_ORDERS:
            return f"listed as open under tag {self.tag!r} in {self.path}"
        if self.kind == KIND_COMMAND_RESULT:
            return f"submit command result {self.status!r} in {self.path}"
        if self.kind == KIND_POSITION:
            moved = f"position in {self.tag} moved the order's way since its baseline ({self.status})"
            return f"{moved} in {self.path}"
        if self.kind == KIND_COMMAND_FILE:
            text = in_flight_text(command_id=self.command_id, path=self.path, expires=iso_parse(self.time))
            return f"{text}, for tag {self.tag!r}" if self.tag else text
        filled = f", filled {self.filled:g}" if self.filled else ""
        when = f" at {self.time}" if self.time else ""
        return f"{self.status or 'status-less'} event{filled} for tag {self.tag!r}{when} in {self.path}"


@dataclass(frozen=True)
class SubmitCommand:
    """params.submit_command as far as it can be trusted."""

    pending: bool
    command_id: str | None  # None when absent or not a safe file name
    requested_at: datetime | None
    expires_at: datetime | None
    bad_command_id: bool = False  # present but unusable as a file name
    command_path: str | None = None  # the command file, as the backend named it


@dataclass(frozen=True)
class OrderEvidence:
    """Everything the broker's files say about one order; gathered once per sweep."""

    tags: frozenset[str]
    command_id: str | None
    folders: tuple[str, ...] = ()
    open: Sighting | None = None  # listed in a fresh open-orders snapshot
    seen: Sighting | None = None  # an event or result that means the broker has or had it
    closed: Sighting | None = None  # every tag's last event is terminal, no fill anywhere (rule 5b)
    submit_result: Sighting | None = None  # the submit command's result, submitted or rejected
    waiting_command: Sighting | None = None  # a submit command file naming it, not yet expired
    unreadable: tuple[str, ...] = ()  # "path: problem" of files that exist but say nothing usable
    unavailable: str | None = None  # a folder that should exist and does not

    @property
    def submit_rejected(self) -> bool:
        return self.submit_result is not None and self.submit_result.status in RESULT_REJECTED

    def as_dict(self) -> dict[str, Any]:
        return {
            "tags": sorted(self.tags),
            "command_id": self.command_id,
            "folders": list(self.folders),
            "open": self.open.as_dict() if self.open else None,
            "seen": self.seen.as_dict() if self.seen else None,
            "closed": self.closed.as_dict() if self.closed else None,
            "submit_result": self.submit_result.as_dict() if self.submit_result else None,
            "waiting_command": self.waiting_command.as_dict() if self.waiting_command else None,
            "unreadable": list(self.unreadable),
            "unavailable": self.unavailable,
        }


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def order_tags(*, order_id: int, client_order_id: str, params: Mapping[str, Any]) -> frozenset[str]:
    """Every tag the broker's files may carry for this order.

    The broker tag is params.broker_order_tag if set, else params.event_tag (but not a
    `direct:` event_tag on an order whose client_order_id is not `direct:` itself: that one
    was copied from another order), else the client_order_id. The client_order_id and
    `direct:<id>` (what direct orders' events carry) match too: any of them is the order.
    A replacement is read by its own tags only: a tag of the chain's earlier orders (which
    an earlier version of a sweep copied along) is theirs, never the replacement's.
    """
    tags = {f"{DIRECT_TAG_PREFIX}{order_id}"}
    client = _text(client_order_id)
    if client:
        tags.add(client)
    inherited = _chain_tags(params)
    broker_tag = _text(params.get("broker_order_tag"))
    if broker_tag and broker_tag not in inherited:
        tags.add(broker_tag)
    elif not broker_tag:
        event_tag = _text(params.get("event_tag"))
        copied = (
            event_tag is not None
            and event_tag.startswith(DIRECT_TAG_PREFIX)
            and not (client or "").startswith(DIRECT_TAG_PREFIX)
        )
        if event_tag and not copied and event_tag not in inherited:
            tags.add(event_tag)
    return frozenset(tags)


def _chain_tags(params: Mapping[str, Any]) -> frozenset[str]:
    """The tags of the orders a replacement was made from (its origin and the chain's root)."""
    chain = params.get("auto_recovery")
    if not isinstance(chain, Mapping):
        return frozenset()
    tags = set()
    for id_key, client_key in (
        ("origin_order_id", "origin_client_order_id"),
        ("root_order_id", "root_client_order_id"),
    ):
        if type(chain.get(id_key)) is int:
            tags.add(f"{DIRECT_TAG_PREFIX}{chain[id_key]}")
        client = _text(chain.get(client_key))
        if client:
            tags.add(client)
    return frozenset(tags)


def evidence_covers(
    evidence: OrderEvidence, *, order_id: int, client_order_id: str, params: Mapping[str, Any]
) -> bool:
    """Whether evidence gathered earlier still answers for the order as it is now.

    The re-check under the row lock uses the sweep's evidence (no second read per order);
    if the order's tags or its submit command changed since, that evidence is about
    something else, and the order is left for the next run.
    """
    command = submit_command_get(params)
    tags = order_tags(order_id=order_id, client_order_id=client_order_id, params=params)
    return tags <= evidence.tags and (command.command_id if command else None) == evidence.command_id


# The words the backend reads as a true `pending` (besides JSON true), in any case.
_PENDING_WORDS = frozenset({"1", "true", "yes", "y", "on"})


def _pending(value: Any) -> bool:
    """params.submit_command.pending as the backend reads it: true, or 1/true/yes/y/on."""
    if isinstance(value, bool):
        return value
    return value is not None and str(value).strip().lower() in _PENDING_WORDS


def submit_command_get(params: Mapping[str, Any]) -> SubmitCommand | None:
    command = params.get("submit_command")
    if not isinstance(command, Mapping):
        return None
    raw_id = command.get("command_id")
    command_id = raw_id.strip() if isinstance(raw_id, str) else None
    safe = command_id is not None and _COMMAND_ID.match(command_id) is not None and ".." not in command_id
    return SubmitCommand(
        pending=_pending(command.get("pending")),
        command_id=command_id if safe else None,
        requested_at=iso_parse(command.get("requested_at")),
        expires_at=iso_parse(command.get("expires_at")),
        bad_command_id=raw_id is not None and not safe,
        command_path=command.get("command_path") if isinstance(command.get("command_path"), str) else None,
    )


def _number(value: Any) -> float | None:
    """A JSON number or numeric string as a float; None when it is not one (bool, NaN, text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer past float range is a fill all the same
        return math.inf
    return None if math.isnan(number) else number


def _status(event: Mapping[str, Any]) -> str | None:
    """The event's status as compared: stripped, upper-case; None when it is not text."""
    raw = event.get("status")
    return raw.strip().upper() if isinstance(raw, str) else None


def event_sighting(event: Mapping[str, Any], *, tag: str, path: str) -> Sighting:
    status = _status(event)
    time = event.get("time") if isinstance(event.get("time"), str) else None
    filled = _number(event.get("filled"))
    shown = filled if filled is not None and math.isfinite(filled) else None  # JSON-safe
    return Sighting(KIND_EVENT, path, tag=tag, status=status, time=time, filled=shown)


def event_is_done(event: Mapping[str, Any]) -> bool:
    """True only for an explicit terminal status and no fill.

    Everything else means the broker may have the order: a working or filled status, a
    fill, and also a status this code does not know, a missing one, or a `filled` that is
    not a number (a wrong cancel is a lost trade; a skipped recovery waits a minute).
    """
    raw_filled = event.get("filled")
    no_fill = raw_filled is None or _number(raw_filled) == 0
    return _status(event) in DONE_STATUSES and no_fill


def event_has_fill(event: Mapping[str, Any]) -> bool:
    """A `filled` that is present and not a zero number: a fill, never to be forgotten."""
    raw = event.get("filled")
    return raw is not None and _number(raw) != 0


def event_tag(event: Mapping[str, Any]) -> str | None:
    return _text(event.get("tag"))


def event_time(event: Mapping[str, Any]) -> datetime | None:
    return iso_parse(event.get("time"))


def event_line_parse(line: bytes) -> dict[str, Any] | None:
    """One JSONL line as an object; None when it is not one (blank lines never get here)."""
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


_TAG_VALUE = re.compile(rb'"tag"\s*:\s*"((?:[^"\\]|\\.)*)"')


def fragment_tags(fragment: bytes) -> list[str] | None:
    """Tags named in a line that is not valid JSON; None when no complete tag is in it."""
    found = []
    for match in _TAG_VALUE.finditer(fragment):
        try:
            found.append(json.loads(b'"' + match.group(1) + b'"').strip())
        except ValueError:
            continue
    return found or None


def command_result_parse(raw: bytes, *, path: str) -> tuple[Sighting | None, str | None]:
    """(sighting, problem): a result file's status, or why it cannot be understood."""
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return None, "invalid_json"
    if not isinstance(payload, dict):
        return None, "bad_shape"
    status = _text(payload.get("status"))
    if status is None:
        return None, "no_status"
    status = status.lower()
    if status != RESULT_SUBMITTED and status not in RESULT_REJECTED:
        return None, f"unknown_status {status!r}"
    time = payload.get("processed_at") if isinstance(payload.get("processed_at"), str) else None
    return Sighting(KIND_COMMAND_RESULT, path, status=status, time=time), None


@dataclass(frozen=True)
class TagHistory:
    """One tag's lines in one events file, in file order, as far as the decision needs them."""

    last: Sighting  # the tag's latest line by position in the file
    last_done: bool  # that line is an explicit terminal status without a fill
    fill: Sighting | None  # a line with a fill anywhere in the history: never forgotten
    position: int  # where `last` ends in the file (bytes)


@dataclass(frozen=True)
class EventsView:
    """What one events file says about one order: its tags' histories, or why it cannot say."""

    path: str
    histories: tuple[TagHistory, ...] = ()
    unreadable: tuple[str, ...] = ()  # problems that leave the order alone (file, cap, lines)


def _file_verdict(view: EventsView) -> tuple[TagHistory, Sighting | None] | None:
    """The order's latest line in this file over all its tags, and a fill if any; None: none."""
    if not view.histories:
        return None
    latest = max(view.histories, key=lambda h: h.position)
    fill = next((h.fill for h in view.histories if h.fill is not None), None)
    return latest, fill


def broker_verdict(
    views: list[EventsView], *, tolerance: timedelta
) -> tuple[Sighting | None, Sighting | None]:
    """(seen, closed) from the order's events files.

    In each file, file order decides (its latest line over the order's tags); a fill in
    any file is never forgotten. Across files, whose lines no position orders, a working
    last line wins over a terminal one in another file unless that one is later in time
    by more than `tolerance` (event times are not trusted closer than that, and a time
    that does not parse never supersedes anything).
    """
    verdicts = [v for v in (_file_verdict(view) for view in views) if v is not None]
    fill = next((f for _, f in verdicts if f is not None), None)
    if fill is not None:
        return fill, None
    working = [h.last for h, _ in verdicts if not h.last_done]
    terminal = [h.last for h, _ in verdicts if h.last_done]
    for sighting in working:
        if not _superseded(sighting, by=terminal, tolerance=tolerance):
            return sighting, None
    return None, (terminal[0] if terminal else None)


def _superseded(working: Sighting, *, by: list[Sighting], tolerance: timedelta) -> bool:
    moment = iso_parse(working.time)
    if moment is None:
        return False
    later = (iso_parse(t.time) for t in by)
    return any(t is not None and t > moment + tolerance for t in later)


def baseline_quantity(params: Mapping[str, Any], *, symbol: str) -> float | None:
    """params.positions_baseline's quantity for `symbol` (missing: 0, as the backend reads it);
    None when the order has no usable baseline."""
    baseline = params.get("positions_baseline")
    if not isinstance(baseline, Mapping) or not isinstance(baseline.get("items"), list):
        return None
    for item in baseline["items"]:
        if isinstance(item, Mapping) and isinstance(item.get("symbol"), str):
            if item["symbol"].strip().upper() == symbol:
                number = _number(item.get("quantity") if item.get("quantity") is not None else 0)
                return number if number is not None and math.isfinite(number) else None
    return 0.0


def position_moved(
    params: Mapping[str, Any], *, side: Any, symbol: Any, quantities: Mapping[str, float], path: str
) -> Sighting | None:
    """A fresh position that moved the order's way since its baseline: the backend books it filled."""
    if not isinstance(symbol, str) or side not in ("BUY", "SELL"):
        return None
    key = symbol.strip().upper()
    base = baseline_quantity(params, symbol=key)
    if base is None:
        return None
    now = quantities.get(key, 0.0)
    moved = now > base if side == "BUY" else now < base
    if not moved:
        return None
    return Sighting(KIND_POSITION, path, tag=key, status=f"{base:g} -> {now:g}")


def evidence_combine(
    *,
    tags: frozenset[str],
    command: SubmitCommand | None,
    folders: tuple[str, ...],
    snapshots: list[tuple[str, frozenset[str] | None, str | None]],
    events: list[EventsView],
    results: list[tuple[Sighting | None, str | None, str]],
    unavailable: str | None,
    tolerance: timedelta,
    waiting: list[Sighting] | None = None,
    position: Sighting | None = None,
) -> OrderEvidence:
    """One order's evidence from the files of its folders.

    snapshots: (path, tags listed or None when no fresh data, problem when unreadable);
    events: what each events file says about the order (EventsView); results: (sighting,
    problem, path) of its submit command's result files; waiting: the unexpired submit
    command files in `commands/` that name it.
    """
    unreadable: list[str] = []
    opened = None
    for path, listed, problem in snapshots:
        if problem is not None:
            unreadable.append(f"{path}: {problem}")
        elif listed is not None and opened is None:
            hit = sorted(tags & listed)
            if hit:
                opened = Sighting(KIND_OPEN_ORDERS, path, tag=hit[0])
    for view in events:
        unreadable.extend(f"{view.path}: {problem}" for problem in view.unreadable)
    seen, closed = broker_verdict(events, tolerance=tolerance)
    seen = seen or position  # a position moved its way: filled, whatever the events say
    submit_result = None
    for sighting, problem, path in results:
        if problem is not None:
            unreadable.append(f"{path}: {problem}")
        elif sighting is not None and submit_result is None:
            submit_result = sighting
    if command is not None and command.bad_command_id:
        unreadable.append("params.submit_command.command_id: not a usable file name")
    if submit_result is not None and submit_result.status == RESULT_SUBMITTED and closed is None:
        # The bridge placed it; only the tag's later terminal events can say it is over.
        seen = seen or submit_result
    return OrderEvidence(
        tags=tags,
        command_id=command.command_id if command else None,
        folders=folders,
        open=opened,
        seen=seen,
        closed=closed if seen is None else None,
        submit_result=submit_result,
        waiting_command=(waiting or [None])[0],
        unreadable=tuple(unreadable),
        unavailable=unavailable,
    )
