"""Submit commands waiting in the bridge's `commands/` folders (rule 5, file access).

The backend writes `<commands dir>/<command_id>.json` (type `submit_order`, the order's
`order_id` and `tag`, `requested_at`, `expires_at`) before it commits the order's params,
and it may mark a leader command `superseded` with `pending: false` while the bridge can
still place it. So a command file that names an order, before its expiry, holds the order
in flight whatever the order's params say. A file without a readable expiry stands until
its requested_at (else the file's own time) plus the backend's 120 s.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recovery.db.timestamps import iso_parse, iso_utc
from recovery.gates.evidence import KIND_COMMAND_FILE, Sighting, fragment_tags

COMMANDS_DIR = "commands"
SUBMIT_TYPE = "submit_order"
COMMAND_MAX_BYTES = 1024 * 1024
COMMAND_TTL = timedelta(seconds=120)  # what the backend writes when it names no other expiry
_ORDER_ID = re.compile(rb'"order_id"\s*:\s*(\d+)')


@dataclass(frozen=True)
class WaitingCommand:
    sighting: Sighting  # path, tag, status "submit_order", time = its expiry (ISO)
    command_id: str | None
    order_id: int | None
    tag: str | None
    expires: datetime


@dataclass
class CommandsFolder:
    """One folder's submit commands, and the files in it that could not be understood."""

    waiting: list[WaitingCommand] = field(default_factory=list)
    unreadable_for_ids: dict[int, str] = field(default_factory=dict)
    unreadable_for_tags: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # the folder exists but cannot be listed

    def holding(self, *, order_id: int, tags: Iterable[str], now: datetime) -> list[WaitingCommand]:
        """The commands naming the order (by id or a tag) that the bridge may still run."""
        names = frozenset(tags)
        return [c for c in self.waiting if c.expires > now and (c.order_id == order_id or c.tag in names)]

    def unreadable_for(self, *, order_id: int, tags: Iterable[str]) -> list[str]:
        found = [self.unreadable_for_ids[order_id]] if order_id in self.unreadable_for_ids else []
        return found + [self.unreadable_for_tags[t] for t in sorted(tags) if t in self.unreadable_for_tags]


def commands_read(folder: Path) -> CommandsFolder | None:
    """The submit commands of `folder/commands/`; None when there is no such folder."""
    directory = folder / COMMANDS_DIR
    found = CommandsFolder()
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return None
    except OSError as exc:
        found.problem = f"{directory}: cannot be listed ({exc.strerror or exc})"
        return found
    for entry in entries:
        if entry.name.endswith(".json"):  # the backend writes X.json.tmp, then renames it
            _command_take(found, Path(entry.path))
    return found


def _command_take(found: CommandsFolder, path: Path) -> None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(COMMAND_MAX_BYTES + 1)
        written = datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)
    except FileNotFoundError:
        return  # executed and removed since the listing
    except OSError as exc:
        _unreadable(found, b"", f"{path}: unreadable ({exc.strerror or exc})")
        return
    try:
        payload = json.loads(raw) if len(raw) <= COMMAND_MAX_BYTES else None
    except (ValueError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        _unreadable(found, raw, f"{path}: not a command the bridge could read")
        return
    if payload.get("type") != SUBMIT_TYPE:
        return
    raw_id, raw_tag = payload.get("order_id"), payload.get("tag")
    order_id = raw_id if type(raw_id) is int else None
    tag = raw_tag.strip() if isinstance(raw_tag, str) and raw_tag.strip() else None
    requested = iso_parse(payload.get("requested_at")) or written
    expires = iso_parse(payload.get("expires_at")) or requested + COMMAND_TTL
    command_id = payload.get("command_id") if isinstance(payload.get("command_id"), str) else None
    sighting = Sighting(
        KIND_COMMAND_FILE,
        str(path),
        tag=tag,
        status=SUBMIT_TYPE,
        time=iso_utc(expires),
        command_id=command_id,
    )
    found.waiting.append(WaitingCommand(sighting, command_id, order_id, tag, expires))


def _unreadable(found: CommandsFolder, raw: bytes, problem: str) -> None:
    """A file that cannot be read: unreadable for whatever order it names, if it names one."""
    for match in _ORDER_ID.finditer(raw):
        found.unreadable_for_ids.setdefault(int(match.group(1)), problem)
    for tag in fragment_tags(raw) or ():
        found.unreadable_for_tags.setdefault(tag, problem)
