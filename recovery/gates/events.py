"""execution_events.jsonl, read forward from where this host left off, in file order.

The events file is written by other processes on other hosts: lines of many orders
interleave, their `time` fields go backwards (C#'s 0001-01-01, naive local times, a Lean
clock minutes off). So no line's time ever decides anything here. What decides:

- File order. Each tag's history is the lines that name it, in the order they stand in
  the file. Its last line is what the broker says now; a fill anywhere in it is never
  forgotten.
- Where this host's reading began. The ledger reads forward from the byte after the last
  complete line it read, and keeps each tag's history between reads (in memory, and in a
  small JSON file per events file in `state_dir`, so the next cron run goes on from there).
  It starts again from the top when the file shrank or was replaced (another inode). When
  the unread part is larger than the read cap, it reads only the cap's worth at the end,
  from a line start, forgets what it knew and notes when it began there (`started_at`,
  this host's clock): an order created after that moment has every event in what is read,
  because the backend writes the order's row before anything can send it. Orders created
  before it are not covered (`covers`): the sweep leaves them alone as unreadable rather
  than read "no event" into a gap.
- The file's last line, when it has no newline yet, is still being written: it is not
  consumed (the next read takes it again), and unless it is already a whole JSON object,
  the tags it names (or, if it names none yet, every tag of the file) are unreadable for
  this read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from recovery.db.timestamps import iso_parse, iso_utc
from recovery.gates.evidence import (
    KIND_EVENT,
    Sighting,
    TagHistory,
    event_has_fill,
    event_is_done,
    event_line_parse,
    event_sighting,
    event_tag,
    fragment_tags,
)

CHUNK_BYTES = 256 * 1024
TAIL_BYTES = 32
STATE_FOLDER = "events_read"  # the ledgers' folder, under the host's AUTO_RECOVER_LOCK_DIR
# 2: each tag kept compact ([status, time, filled, done, fill, position]; the path and
# kind are the ledger's): version 1 wrote a whole sighting per tag, twice the file's size.
STATE_VERSION = 2

MSG_TOO_LARGE = (
    "{unread} unread bytes are more than BRIDGE_EVENTS_MAX_READ_BYTES ({cap}): read from byte {start},"
    " which covers orders created after {since}"
)
MSG_PARTIAL_LINE = "its last line is incomplete and names no tag yet"


class TagHistories(dict):
    """tag -> TagHistory. Tags loaded from a kept ledger stay in their compact form until one
    is asked for: a run reads the few tags of its candidates, not a file's every tag (a new
    cron process paid seconds building a million histories it never looked at)."""

    def __init__(self, path: str, items: Any = ()) -> None:
        super().__init__(items)
        self.path = path

    def __getitem__(self, tag: str) -> TagHistory:
        value = super().__getitem__(tag)
        if isinstance(value, list):
            value = _history(value, path=self.path, tag=tag)
            super().__setitem__(tag, value)
        return value

    def get(self, tag: str, default: Any = None) -> Any:
        return self[tag] if tag in self else default

    def items(self) -> list[tuple[str, TagHistory]]:  # type: ignore[override]
        return [(tag, self[tag]) for tag in self]

    def values(self) -> list[TagHistory]:  # type: ignore[override]
        return [self[tag] for tag in self]


def _tags_default() -> TagHistories:
    return TagHistories("")


@dataclass
class Ledger:
    """What this host has read of one events file; kept between reads."""

    path: str
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file read
    offset: int = 0  # bytes consumed; always just after a newline (or 0)
    head: str = ""  # hex of the file's first bytes, and
    tail: str = ""  # of the bytes just before `offset`: a file rewritten in place shows here
    start: int = 0  # where this host's reading began: 0 when from the top
    started_at: datetime | None = None  # this host's clock when it began at `start` > 0
    cut: str | None = None  # why reading began past the top (the cap), for reports
    tags: TagHistories = field(default_factory=_tags_default)
    bad_line_tags: set[str] = field(default_factory=set)  # named in complete lines that do not parse

    def __post_init__(self) -> None:
        if not isinstance(self.tags, TagHistories) or self.tags.path != self.path:
            self.tags = TagHistories(self.path, self.tags)

    def covers(self, since: datetime) -> bool:
        """Whether every event of an order that exists since `since` is in what was read."""
        return self.start == 0 or (self.started_at is not None and since >= self.started_at)


@dataclass(frozen=True)
class ReadResult:
    """One read of a file: the ledger after it, and what this read alone could not settle."""

    path: str
    ledger: Ledger | None  # None: the file does not exist (or could not be read at all)
    problem: str | None = None  # the file exists but could not be read: every order it concerns
    partial_tags: frozenset[str] = frozenset()  # named in a last line still being written
    partial_untagged: bool = False  # a last line still being written that names no tag yet
    bytes_read: int = 0
    lines_read: int = 0


def ledger_read(path: Path, *, kept: Ledger | None, now: datetime, max_bytes: int) -> tuple[ReadResult, bool]:
    """Bring `kept` (or a new ledger) up to the file's end; (result, whether it changed)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return ReadResult(str(path), None), kept is not None
    except OSError as exc:
        return ReadResult(str(path), kept, problem=f"unreadable ({exc.strerror or exc})"), False
    with handle:
        try:
            return _read(handle, path=path, kept=kept, now=now, max_bytes=max_bytes)
        except OSError as exc:
            return ReadResult(str(path), kept, problem=f"unreadable ({exc.strerror or exc})"), False


def _read(
    handle: BinaryIO, *, path: Path, kept: Ledger | None, now: datetime, max_bytes: int
) -> tuple[ReadResult, bool]:
    status = os.fstat(handle.fileno())
    identity, size = (status.st_dev, status.st_ino), status.st_size
    ledger = kept if kept is not None else Ledger(str(path))
    changed = kept is None
    if (
        ledger.identity != identity
        or size < ledger.offset
        or _tail(handle, ledger.offset) != ledger.tail
        or (ledger.offset > 0 and _head(handle) != ledger.head)
    ):
        ledger, changed = Ledger(str(path), identity=identity), True  # replaced, truncated, rewritten
    if size - ledger.offset > max_bytes:
        start = _line_start_at_or_after(handle, size - max_bytes, size=size)
        since = iso_utc(now)
        cut = MSG_TOO_LARGE.format(unread=size - ledger.offset, cap=max_bytes, start=start, since=since)
        ledger = Ledger(str(path), identity=identity, offset=start, start=start, started_at=now, cut=cut)
        ledger.tail, ledger.head = _tail(handle, start), _head(handle)
        changed = True
    if size == ledger.offset:
        return ReadResult(str(path), ledger), changed
    handle.seek(ledger.offset)
    remaining, carry, lines, consumed = size - ledger.offset, b"", 0, ledger.offset
    while remaining > 0:
        data = handle.read(min(CHUNK_BYTES, remaining))
        if not data:
            break  # the file shrank while it was read: the next read starts again
        remaining -= len(data)
        pieces = (carry + data).split(b"\n")
        carry = pieces.pop()  # after the last newline: a line not complete (yet)
        for piece in pieces:
            consumed += len(piece) + 1
            lines += _line_take(ledger, piece, position=consumed)
    read = consumed - ledger.offset + len(carry)
    ledger.offset = consumed
    ledger.tail = _tail(handle, consumed)
    ledger.head = _head(handle)
    partial = carry.strip()
    if partial and event_line_parse(partial) is not None:
        # A whole object without its newline yet: read now, and again (to the same effect)
        # once the newline is there, since the offset stays before it.
        lines += _line_take(ledger, partial, position=consumed + len(carry))
        partial = b""
    named = frozenset(fragment_tags(partial) or ()) if partial else frozenset()
    result = ReadResult(
        str(path),
        ledger,
        partial_tags=named,
        partial_untagged=bool(partial) and not named,
        bytes_read=read,
        lines_read=lines,
    )
    return result, changed or consumed > 0


def _head(handle: BinaryIO) -> str:
    handle.seek(0)
    return handle.read(TAIL_BYTES).hex()


def _tail(handle: BinaryIO, offset: int) -> str:
    """The (up to) 32 bytes before `offset`, as hex: what the file held where reading stopped."""
    if offset == 0:
        return ""
    start = max(0, offset - TAIL_BYTES)
    handle.seek(start)
    return handle.read(offset - start).hex()


def _line_start_at_or_after(handle: BinaryIO, position: int, *, size: int) -> int:
    """The first byte of the first line that starts at or after `position`."""
    if position <= 0:
        return 0
    handle.seek(position - 1)
    while position <= size:
        data = handle.read(CHUNK_BYTES)
        if not data:
            return size
        index = data.find(b"\n")
        if index >= 0:
            return position + index
        position += len(data)
    return size


def _line_take(ledger: Ledger, line: bytes, *, position: int) -> int:
    """Fold one complete line into the ledger; 1 when it counted as a line."""
    text = line.strip()
    if not text:
        return 0
    event = event_line_parse(text)
    if event is None:
        ledger.bad_line_tags.update(fragment_tags(text) or ())
        return 1
    tag = event_tag(event)
    if tag is None:
        return 1
    sighting = event_sighting(event, tag=tag, path=ledger.path)
    before = ledger.tags.get(tag)
    fill = before.fill if before is not None and before.fill is not None else None
    if fill is None and event_has_fill(event):
        fill = sighting
    ledger.tags[tag] = TagHistory(last=sighting, last_done=event_is_done(event), fill=fill, position=position)
    return 1


class LedgerStore:
    """Ledgers kept by this host: in memory for this process, as JSON files for the next.

    A file per events file, named by a hash of its path, written whole and renamed into
    place: two processes that save at once leave one whole ledger, each a true account
    of the file up to its offset.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._memory: dict[str, Ledger] = {}

    def read(self, path: Path, *, now: datetime, max_bytes: int) -> ReadResult:
        key = str(path)
        kept = self._memory.get(key)
        if kept is None:
            kept = self._load(key)
        result, changed = ledger_read(path, kept=_copy(kept), now=now, max_bytes=max_bytes)
        if result.ledger is None:
            self._memory.pop(key, None)
        elif result.problem is None:
            self._memory[key] = result.ledger
            if changed:
                self._save(result.ledger)
        return result

    def _file(self, key: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"

    def _load(self, key: str) -> Ledger | None:
        file = self._file(key)
        if file is None:
            return None
        try:
            payload = json.loads(file.read_text())
        except (OSError, ValueError):
            return None  # none kept, or not readable: read the file from the top again
        return ledger_from_dict(payload, path=key)

    def _save(self, ledger: Ledger) -> None:
        file = self._file(ledger.path)
        if file is None:
            return
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=file.parent, delete=False, suffix=".tmp") as out:
                json.dump(ledger_as_dict(ledger), out)
            os.replace(out.name, file)
        except OSError:
            return  # the next process reads the file again from the top: slower, as true


def _copy(ledger: Ledger | None) -> Ledger | None:
    # A read that fails half-way must not leave the kept ledger half-updated.
    if ledger is None:
        return None
    return replace(
        ledger, tags=TagHistories(ledger.path, ledger.tags), bad_line_tags=set(ledger.bad_line_tags)
    )


def _compact(history: TagHistory | list) -> list:
    if isinstance(history, list):
        return history  # loaded and never asked for: as it was kept
    fill = history.fill
    fill_kept = None if fill is None else [fill.status, fill.time, fill.filled]
    last = history.last
    return [last.status, last.time, last.filled, history.last_done, fill_kept, history.position]


def _history(item: list, *, path: str, tag: str) -> TagHistory:
    status, time, filled, done, fill, position = item
    return TagHistory(
        last=Sighting(KIND_EVENT, path, tag=tag, status=status, time=time, filled=filled),
        last_done=bool(done),
        fill=None
        if fill is None
        else Sighting(KIND_EVENT, path, tag=tag, status=fill[0], time=fill[1], filled=fill[2]),
        position=int(position),
    )


def ledger_as_dict(ledger: Ledger) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "path": ledger.path,
        "identity": list(ledger.identity) if ledger.identity else None,
        "offset": ledger.offset,
        "head": ledger.head,
        "tail": ledger.tail,
        "start": ledger.start,
        "started_at": iso_utc(ledger.started_at) if ledger.started_at else None,
        "cut": ledger.cut,
        "tags": {tag: _compact(history) for tag, history in dict.items(ledger.tags)},
        "bad_line_tags": sorted(ledger.bad_line_tags),
    }


def ledger_from_dict(payload: Mapping[str, Any], *, path: str) -> Ledger | None:
    """A kept ledger; None when it is not one this version wrote for this path."""
    try:
        if payload.get("version") != STATE_VERSION or payload.get("path") != path:
            return None
        identity = payload["identity"]
        started_at = payload["started_at"]
        return Ledger(
            path,
            identity=(int(identity[0]), int(identity[1])) if identity else None,
            offset=int(payload["offset"]),
            head=str(payload["head"]),
            tail=str(payload["tail"]),
            start=int(payload["start"]),
            started_at=iso_parse(started_at) if started_at else None,
            cut=payload.get("cut"),
            tags=TagHistories(path, _checked_tags(payload["tags"])),
            bad_line_tags=set(payload["bad_line_tags"]),
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def _checked_tags(raw: Any) -> dict[str, list]:
    """The kept tags, each a compact entry of the right shape (or the whole ledger is refused)."""
    if not isinstance(raw, dict):
        raise TypeError("tags is not an object")
    for item in raw.values():
        if not isinstance(item, list) or len(item) != 6 or not (item[4] is None or len(item[4]) == 3):
            raise ValueError("a kept tag is not [status, time, filled, done, fill, position]")
    return raw
