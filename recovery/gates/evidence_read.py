"""Broker evidence (file access): read the folders where the Lean processes write.

For each candidate: the bridge root; its run's output folder (trade_runs.params.
lean_execution.output_dir, mapped to where this host mounts it); for a direct order,
`<bridge root>/direct_<order id>/`. In each folder: open_orders.json (fresh only),
execution_events.jsonl and command_results/<command_id>.json. Every folder and file is read
once per gathering, whatever number of orders it concerns; gates.evidence says what it means.

Bounded reads: execution_events.jsonl grows for the life of a run, and an event about an
order is written after the order's row (the backend writes the row, then submits). So the
file is read backwards from its end, in chunks, and reading stops at the first event older
than the oldest order it concerns (less BRIDGE_EVENTS_CLOCK_SKEW_SECONDS for clocks that
disagree), or after BRIDGE_EVENTS_MAX_READ_BYTES. Where that cap cut the reading short,
the orders created after the oldest event read are fully covered; the older ones are left
alone (unreadable), not assumed unseen, so one ancient order cannot hold up the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from recovery.gates.bridge import (
    PROBLEM_BAD_SHAPE,
    PROBLEM_INVALID_JSON,
    PROBLEM_UNREADABLE,
    OpenOrdersSnapshot,
    open_orders_read,
)
from recovery.gates.evidence import (
    COMMAND_RESULTS_DIR,
    DIRECT_FOLDER_PREFIX,
    EVENTS_FILE,
    FileFindings,
    OrderEvidence,
    Sighting,
    SubmitCommand,
    chunk_elsewhere,
    command_result_parse,
    event_line_parse,
    event_tag,
    event_time,
    evidence_combine,
    fragment_tags,
    line_glance,
)

CHUNK_BYTES = 256 * 1024
BLOCK_LINES = 200  # lines looked at together before deciding to read them one by one
RESULT_MAX_BYTES = 1024 * 1024
# Problems of an open-orders snapshot that mean "the file is there but says nothing usable";
# missing, stale or old snapshots only prove nothing.
SNAPSHOT_UNREADABLE = frozenset({PROBLEM_UNREADABLE, PROBLEM_INVALID_JSON, PROBLEM_BAD_SHAPE})

MSG_ROOT_MISSING = "the bridge root {root} does not exist on this host"
MSG_ROOT_UNLISTABLE = "the bridge root {root} cannot be listed: {error}"
MSG_RUN_FOLDER_MISSING = "run {run_id}'s output folder {local} does not exist on this host"
MSG_RUN_FOLDER_RELATIVE = "run {run_id}'s output folder {path!r} is not an absolute path"
MSG_TOO_LARGE = "read {bytes} bytes back without reaching {since}; raise BRIDGE_EVENTS_MAX_READ_BYTES"
MSG_PARTIAL_LINE = "its last line is incomplete and names no tag yet"


@dataclass(frozen=True)
class EvidenceRequest:
    """One candidate, as far as the evidence is concerned."""

    order_id: int
    run_id: int | None
    output_dir: Any  # trade_runs.params.lean_execution.output_dir as stored; None when none
    tags: frozenset[str]
    command: SubmitCommand | None
    created_at: datetime


@dataclass(frozen=True)
class EvidenceGathered:
    root_available: bool
    root_problem: str | None
    orders: Mapping[int, OrderEvidence]
    report: dict[str, Any]


@dataclass
class _Folder:
    path: Path
    orders: list[EvidenceRequest] = field(default_factory=list)
    problem: str | None = None  # exists but cannot be listed


def path_map_parse(value: str) -> tuple[tuple[str, str], ...]:
    """BRIDGE_PATH_MAP: `backend_prefix=local_prefix[,...]`, longest prefix first."""
    pairs = []
    for item in value.split(","):
        if not item.strip():
            continue
        backend, sep, local = item.partition("=")
        if not sep or not backend.strip().startswith("/") or not local.strip():
            raise ValueError(f"BRIDGE_PATH_MAP item {item.strip()!r} is not /backend/prefix=/local/prefix")
        pairs.append((backend.strip().rstrip("/") or "/", local.strip().rstrip("/") or "/"))
    return tuple(sorted(pairs, key=lambda pair: len(pair[0]), reverse=True))


def path_mapped(path: str, mapping: Sequence[tuple[str, str]]) -> str:
    """The backend's path as this host sees it: the first (longest) matching prefix replaced."""
    for backend, local in mapping:
        if path == backend or path.startswith(backend.rstrip("/") + "/"):
            rest = path[len(backend) :].lstrip("/")
            return str(PurePosixPath(local) / rest) if rest else local
    return path


def root_problem_get(root: Path) -> str | None:
    try:
        with os.scandir(root):
            return None
    except FileNotFoundError:
        return MSG_ROOT_MISSING.format(root=root)
    except OSError as exc:
        return MSG_ROOT_UNLISTABLE.format(root=root, error=exc.strerror or exc)


def evidence_gather(
    *,
    root: Path,
    requests: Sequence[EvidenceRequest],
    now: datetime,
    path_map: Sequence[tuple[str, str]],
    open_orders_max_age: int,
    events_max_bytes: int,
    clock_skew_seconds: int,
    root_snapshot: OpenOrdersSnapshot | None = None,
) -> EvidenceGathered:
    """The evidence for every request; each folder and file read once."""
    problem = root_problem_get(root)
    if problem is not None:
        return EvidenceGathered(
            False, problem, {}, {"root": str(root), "available": False, "problem": problem}
        )
    folders: dict[Path, _Folder] = {root: _Folder(root)}
    placed: dict[int, tuple[list[Path], str | None]] = {}
    for request in requests:
        paths, unavailable = _folders_for(request, root=root, path_map=path_map)
        placed[request.order_id] = (paths, unavailable)
        for path in paths:
            folders.setdefault(path, _Folder(path)).orders.append(request)
    folders[root].orders = list(requests)
    snapshots = {
        path: _snapshot(
            path, now=now, max_age=open_orders_max_age, known=root_snapshot if path == root else None
        )
        for path in folders
    }
    skew = timedelta(seconds=clock_skew_seconds)
    events = {
        path: _events_read(
            path / EVENTS_FILE,
            wanted=frozenset().union(*(r.tags for r in folder.orders)),
            since=min(r.created_at for r in folder.orders) - skew,
            max_bytes=events_max_bytes,
        )
        for path, folder in folders.items()
        if folder.orders
    }
    orders = {}
    for request in requests:
        paths, unavailable = placed[request.order_id]
        consulted = [root, *paths]
        results = (
            [_result_read(p / COMMAND_RESULTS_DIR / f"{request.command.command_id}.json") for p in consulted]
            if request.command is not None and request.command.command_id is not None
            else []
        )
        orders[request.order_id] = evidence_combine(
            tags=request.tags,
            command=request.command,
            folders=tuple(str(p) for p in consulted),
            snapshots=[snapshots[p] for p in consulted],
            events=[f for f in (events.get(p) for p in consulted) if f is not None],
            results=[r for r in results if r is not None],
            unavailable=unavailable,
            since=request.created_at - skew,
        )
    report = {
        "root": str(root),
        "available": True,
        "problem": None,
        "folders": len(folders),
        "events_files_read": sum(1 for f in events.values() if f is not None),
        "events_bytes_read": sum(f.bytes_read for f in events.values() if f is not None),
        "events_lines_read": sum(f.lines for f in events.values() if f is not None),
    }
    return EvidenceGathered(True, None, orders, report)


def _folders_for(
    request: EvidenceRequest, *, root: Path, path_map: Sequence[tuple[str, str]]
) -> tuple[list[Path], str | None]:
    """The order's own folders besides the root, and why one that should exist does not."""
    if request.run_id is None:
        direct = root / f"{DIRECT_FOLDER_PREFIX}{request.order_id}"
        # A direct order sent through the leader bridge has no folder of its own: no evidence.
        return ([direct] if os.path.lexists(direct) else []), None
    raw = request.output_dir
    if raw is None:
        return [], None  # the run names no output folder: only the root's files apply
    if not isinstance(raw, str) or not raw.strip().startswith("/"):
        return [], MSG_RUN_FOLDER_RELATIVE.format(run_id=request.run_id, path=raw)
    local = Path(path_mapped(raw.strip(), path_map))
    if not local.is_dir():
        return [], MSG_RUN_FOLDER_MISSING.format(run_id=request.run_id, local=local)
    return ([local] if local != root else []), None


def _snapshot(
    folder: Path, *, now: datetime, max_age: int, known: OpenOrdersSnapshot | None
) -> tuple[str, frozenset[str] | None, str | None]:
    snapshot = known or open_orders_read(root=folder, now=now, max_age_seconds=max_age)
    path = str(folder / "open_orders.json")
    if snapshot.problem in SNAPSHOT_UNREADABLE:
        return path, None, snapshot.problem
    return path, snapshot.tags if snapshot.available else None, None


def _result_read(path: Path) -> tuple[Sighting | None, str | None, str] | None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(RESULT_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})", str(path)
    if len(raw) > RESULT_MAX_BYTES:
        return None, "larger than a command result can be", str(path)
    sighting, problem = command_result_parse(raw, path=str(path))
    return sighting, problem, str(path)


def _events_read(
    path: Path, *, wanted: frozenset[str], since: datetime, max_bytes: int
) -> FileFindings | None:
    """The file's events for `wanted` tags, newest first, back to `since`; None when absent."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return FileFindings(str(path), problem=f"unreadable ({exc.strerror or exc})")
    findings = FileFindings(str(path))
    with handle:
        try:
            _events_scan(handle, findings, wanted=wanted, since=since, max_bytes=max_bytes)
        except OSError as exc:
            findings.problem = f"unreadable ({exc.strerror or exc})"
    return findings


def _events_scan(
    handle: Any, findings: FileFindings, *, wanted: frozenset[str], since: datetime, max_bytes: int
) -> None:
    position = os.fstat(handle.fileno()).st_size
    carry = b""
    first_chunk = True
    wanted_bytes = frozenset(tag.encode() for tag in wanted)
    while position > 0:
        if findings.bytes_read >= max_bytes:
            findings.cut = MSG_TOO_LARGE.format(bytes=findings.bytes_read, since=since.isoformat())
            return
        step = min(CHUNK_BYTES, position)
        position -= step
        handle.seek(position)
        data = handle.read(step) + carry
        findings.bytes_read += step
        lines = data.split(b"\n")
        # The piece before the chunk's first newline continues in the chunk before it.
        carry = lines.pop(0) if position > 0 else b""
        if first_chunk:
            if not lines:
                continue  # no newline yet: the file's last line is longer than a chunk
            first_chunk = False
            # Only what follows the file's last newline can still be being written.
            tail = lines.pop() if lines else b""
            if _line_take(tail, findings, wanted=wanted, since=since, unterminated=True):
                return
        if _lines_take(lines, findings, wanted=wanted, wanted_bytes=wanted_bytes, since=since):
            return


def _lines_take(
    lines: list[bytes],
    findings: FileFindings,
    *,
    wanted: frozenset[str],
    wanted_bytes: frozenset[bytes],
    since: datetime,
) -> bool:
    """Complete lines, oldest first, taken newest first in blocks; True when reading can stop.

    A block that cannot concern the wanted tags (gates.evidence.chunk_elsewhere) is passed
    over whole; the others, and the block where the boundary falls, line by line.
    """
    end = len(lines)
    while end > 0:
        start = max(0, end - BLOCK_LINES)
        block = lines[start:end]
        if chunk_elsewhere(b"\n".join(block), first_line=block[0], wanted=wanted_bytes, since=since):
            findings.lines += len(block)
            glance = line_glance(block[0].strip())
            if glance is not None and glance[1] is not None:
                findings.time_seen(glance[1])
        else:
            for line in reversed(block):
                if _line_take(line, findings, wanted=wanted, since=since, unterminated=False):
                    return True
        end = start
    return False


def _line_take(
    line: bytes, findings: FileFindings, *, wanted: frozenset[str], since: datetime, unterminated: bool
) -> bool:
    """Record one line; True when reading can stop (an event older than `since`)."""
    text = line.strip()
    if not text:
        return False
    findings.lines += 1
    glance = line_glance(text)
    if glance is not None and glance[0] not in wanted:
        # Another order's event: only its time counts, and parsing it whole would cost
        # most of the read (a run's file is mostly other orders' lines).
        if glance[1] is not None:
            findings.time_seen(glance[1])
        return glance[1] is not None and glance[1] < since
    event = event_line_parse(text)
    if event is None:
        named = fragment_tags(text)
        if named is not None:
            findings.unreadable_tags.update(t for t in named if t in wanted)
        elif unterminated:
            # A line still being written: it may be about any of these orders.
            findings.problem = MSG_PARTIAL_LINE
        return False
    tag = event_tag(event)
    if tag is not None and tag in wanted:
        findings.add(event, tag)
    moment = event_time(event)
    if moment is not None:
        findings.time_seen(moment)
    return moment is not None and moment < since
