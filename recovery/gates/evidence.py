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
from dataclasses import dataclass, field
from datetime import datetime
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


@dataclass(frozen=True)
class Sighting:
    """One piece of evidence: where it was read and what it says."""

    kind: str
    path: str
    tag: str | None = None
    status: str | None = None
    time: str | None = None
    filled: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def describe(self) -> str:
        if self.kind == KIND_OPEN_ORDERS:
            return f"listed as open under tag {self.tag!r} in {self.path}"
        if self.kind == KIND_COMMAND_RESULT:
            return f"submit command result {self.status!r} in {self.path}"
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


@dataclass(frozen=True)
class OrderEvidence:
    """Everything the broker's files say about one order; gathered once per sweep."""

    tags: frozenset[str]
    command_id: str | None
    folders: tuple[str, ...] = ()
    open: Sighting | None = None  # listed in a fresh open-orders snapshot
    seen: Sighting | None = None  # an event or result that means the broker has or had it
    done: Sighting | None = None  # the broker finished with it without a fill (informational)
    submit_result: Sighting | None = None  # the submit command's result, submitted or rejected
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
            "done": self.done.as_dict() if self.done else None,
            "submit_result": self.submit_result.as_dict() if self.submit_result else None,
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
    """
    tags = {f"{DIRECT_TAG_PREFIX}{order_id}"}
    client = _text(client_order_id)
    if client:
        tags.add(client)
    broker_tag = _text(params.get("broker_order_tag"))
    if broker_tag:
        tags.add(broker_tag)
    else:
        event_tag = _text(params.get("event_tag"))
        copied = (
            event_tag is not None
            and event_tag.startswith(DIRECT_TAG_PREFIX)
            and not (client or "").startswith(DIRECT_TAG_PREFIX)
        )
        if event_tag and not copied:
            tags.add(event_tag)
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


def submit_command_get(params: Mapping[str, Any]) -> SubmitCommand | None:
    command = params.get("submit_command")
    if not isinstance(command, Mapping):
        return None
    raw_id = command.get("command_id")
    command_id = raw_id.strip() if isinstance(raw_id, str) else None
    safe = command_id is not None and _COMMAND_ID.match(command_id) is not None and ".." not in command_id
    return SubmitCommand(
        pending=command.get("pending") is True,
        command_id=command_id if safe else None,
        requested_at=iso_parse(command.get("requested_at")),
        expires_at=iso_parse(command.get("expires_at")),
        bad_command_id=raw_id is not None and not safe,
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


_SIMPLE_TAG = re.compile(rb'"tag"\s*:\s*"([^"\\]*)"')
_SIMPLE_TIME = re.compile(rb'"time"\s*:\s*"([^"\\]*)"')


def line_glance(line: bytes) -> tuple[str, datetime | None] | None:
    """(tag, time) of a one-object line without parsing it; None when that is not certain.

    Most lines of a run's event file are about other orders: only their time matters (to
    know where to stop). One unescaped "tag" and at most one "time" are read with a regex;
    anything less plain (escapes, a repeated key, not an object) goes to the full parser.
    """
    if not (line.startswith(b"{") and line.endswith(b"}")):
        return None
    tags = _SIMPLE_TAG.findall(line)
    if len(tags) != 1 or line.count(b'"tag"') != 1:
        return None
    times = _SIMPLE_TIME.findall(line)
    moment = iso_parse(times[0].decode("utf-8", "replace")) if len(times) == 1 else None
    return tags[0].decode("utf-8", "replace").strip(), moment


def chunk_elsewhere(chunk: bytes, *, first_line: bytes, wanted: frozenset[bytes], since: datetime) -> bool:
    """True when no line of `chunk` (complete lines, oldest first) can concern `wanted`.

    That is: its oldest line is not older than `since` (the file is in time order, so no
    line of the chunk ends the read), and every "tag" in it is a plain value that is not
    wanted. Then the chunk is passed over without a look at each line.
    """
    glance = line_glance(first_line.strip())
    if glance is None or glance[1] is None or glance[1] < since:
        return False
    tags = _SIMPLE_TAG.findall(chunk)
    if len(tags) != chunk.count(b'"tag"'):
        return False
    return not any(tag.strip() in wanted for tag in tags)


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


@dataclass
class FileFindings:
    """What one events file says, per tag; filled by the reader, read by evidence_combine."""

    path: str
    problem: str | None = None  # the whole file could not be read: every order it concerns
    seen: dict[str, Sighting] = field(default_factory=dict)  # latest per tag
    done: dict[str, Sighting] = field(default_factory=dict)
    unreadable_tags: set[str] = field(default_factory=set)  # named in lines that do not parse
    lines: int = 0
    bytes_read: int = 0
    # Set when the read cap stopped the reading early: orders created before `oldest_read`
    # (the oldest event time read) are not covered by what was read; newer ones are.
    cut: str | None = None
    oldest_read: datetime | None = None

    def time_seen(self, moment: datetime) -> None:
        if self.oldest_read is None or moment < self.oldest_read:
            self.oldest_read = moment

    def covers(self, since: datetime | None) -> bool:
        """Whether every event of an order that exists since `since` was read."""
        if self.cut is None:
            return True
        return since is not None and self.oldest_read is not None and since >= self.oldest_read

    def add(self, event: Mapping[str, Any], tag: str) -> None:
        sighting = event_sighting(event, tag=tag, path=self.path)
        target = self.done if event_is_done(event) else self.seen
        # The file is read backwards: the first sighting kept per tag is the latest.
        target.setdefault(tag, sighting)


def evidence_combine(
    *,
    tags: frozenset[str],
    command: SubmitCommand | None,
    folders: tuple[str, ...],
    snapshots: list[tuple[str, frozenset[str] | None, str | None]],
    events: list[FileFindings],
    results: list[tuple[Sighting | None, str | None, str]],
    unavailable: str | None,
    since: datetime | None = None,
) -> OrderEvidence:
    """One order's evidence from the files of its folders.

    snapshots: (path, tags listed or None when no fresh data, problem when unreadable);
    results: (sighting, problem, path) of its submit command's result files; since: the
    earliest moment an event about the order can carry (its creation less the clock skew).
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
    seen = done = None
    for findings in events:
        if findings.problem is not None:
            unreadable.append(f"{findings.path}: {findings.problem}")
        elif not findings.covers(since):
            unreadable.append(f"{findings.path}: {findings.cut}")
        for tag in sorted(tags & findings.unreadable_tags):
            unreadable.append(f"{findings.path}: a line naming {tag!r} is not valid JSON")
        seen = seen or next((findings.seen[t] for t in sorted(tags) if t in findings.seen), None)
        done = done or next((findings.done[t] for t in sorted(tags) if t in findings.done), None)
    submit_result = None
    for sighting, problem, path in results:
        if problem is not None:
            unreadable.append(f"{path}: {problem}")
        elif sighting is not None and submit_result is None:
            submit_result = sighting
    if command is not None and command.bad_command_id:
        unreadable.append("params.submit_command.command_id: not a usable file name")
    if submit_result is not None and submit_result.status == RESULT_SUBMITTED:
        seen = seen or submit_result
    return OrderEvidence(
        tags=tags,
        command_id=command.command_id if command else None,
        folders=folders,
        open=opened,
        seen=seen,
        done=done,
        submit_result=submit_result,
        unreadable=tuple(unreadable),
        unavailable=unavailable,
    )
