"""Broker evidence (file access): read the folders where the Lean processes write.

For each candidate: the bridge root; its run's output folder (trade_runs.params.
lean_execution.output_dir, mapped to where this host mounts it); for a direct order,
`<bridge root>/direct_<order id>/`. In each folder: open_orders.json (fresh only),
execution_events.jsonl and command_results/<command_id>.json. Every folder and file is read
once per gathering, whatever number of orders it concerns; gates.evidence says what it means.

execution_events.jsonl grows for the life of a run: gates.events reads it forward from where
this host left off and keeps each tag's history, so a gathering reads only what was written
since the last one, and no line's time ever ends a read. Where the read cap made it begin
past the top, the orders created before it began are left alone (unreadable), not assumed
unseen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from recovery.gates.bridge import (
    POSITIONS_FILE,
    PROBLEM_BAD_SHAPE,
    PROBLEM_INVALID_JSON,
    PROBLEM_UNREADABLE,
    OpenOrdersSnapshot,
    PositionsSnapshot,
    open_orders_read,
    positions_read,
)
from recovery.gates.commands import CommandsFolder, commands_read
from recovery.gates.events import MSG_PARTIAL_LINE, LedgerStore, ReadResult
from recovery.gates.evidence import (
    COMMAND_RESULTS_DIR,
    DIRECT_FOLDER_PREFIX,
    EVENTS_FILE,
    RESULT_REJECTED,
    EventsView,
    OrderEvidence,
    Sighting,
    SubmitCommand,
    command_result_parse,
    evidence_combine,
    position_moved,
)

RESULT_MAX_BYTES = 1024 * 1024
# Problems of an open-orders snapshot that mean "the file is there but says nothing usable";
# missing, stale or old snapshots only prove nothing.
SNAPSHOT_UNREADABLE = frozenset({PROBLEM_UNREADABLE, PROBLEM_INVALID_JSON, PROBLEM_BAD_SHAPE})

MSG_ROOT_MISSING = "the bridge root {root} does not exist on this host"
MSG_ROOT_UNLISTABLE = "the bridge root {root} cannot be listed: {error}"
MSG_RUN_FOLDER_MISSING = "run {run_id}'s output folder {local} does not exist on this host"
MSG_RUN_ROW_MISSING = "run {run_id} has no trade_runs row, so its output folder is unknown"
MSG_RUN_FOLDER_RELATIVE = "run {run_id}'s output folder {path!r} is not an absolute path"
MSG_PARTIAL_TAG = "its last line, naming {tag!r}, is still being written"
MSG_BAD_LINE = "a line naming {tag!r} is not valid JSON"


@dataclass(frozen=True)
class EvidenceRequest:
    """One candidate, as far as the evidence is concerned."""

    order_id: int
    run_id: int | None
    output_dir: Any  # trade_runs.params.lean_execution.output_dir as stored; None when none
    tags: frozenset[str]
    command: SubmitCommand | None
    created_at: datetime
    run_missing: bool = False  # the order names a run whose trade_runs row is not there
    side: Any = None  # for the positions check against params.positions_baseline
    symbol: Any = None
    baseline: Any = None  # params.positions_baseline as stored; None when absent


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
    store: LedgerStore,
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
        path: store.read(path / EVENTS_FILE, now=now, max_bytes=events_max_bytes)
        for path, folder in folders.items()
        if folder.orders
    }
    commands = {path: commands_read(path) for path, folder in folders.items() if folder.orders}
    positions = positions_read(root=root, now=now, max_age_seconds=open_orders_max_age)
    orders = {}
    for request in requests:
        paths, unavailable = placed[request.order_id]
        consulted = [root, *paths]
        read = (
            [_result_read(p / COMMAND_RESULTS_DIR / f"{request.command.command_id}.json") for p in consulted]
            if request.command is not None and request.command.command_id is not None
            else []
        )
        results = [r for r in read if r is not None]
        waiting, command_problems = _commands_waiting(
            request, [commands[p] for p in consulted if commands.get(p) is not None], results=results, now=now
        )
        since = request.created_at - skew
        views = [_events_view(events[p], tags=request.tags, since=since) for p in consulted if p in events]
        orders[request.order_id] = evidence_combine(
            tags=request.tags,
            command=request.command,
            folders=tuple(str(p) for p in consulted),
            snapshots=[snapshots[p] for p in consulted],
            events=[v for v in views if v is not None],
            results=results,
            unavailable=unavailable,
            tolerance=skew,
            waiting=waiting,
            position=_position_moved(request, positions, root=root),
        )
        if request.baseline is not None and positions.problem in SNAPSHOT_UNREADABLE:
            command_problems.append(f"{root / POSITIONS_FILE}: {positions.problem}")
        if command_problems:
            evidence = orders[request.order_id]
            orders[request.order_id] = replace(
                evidence, unreadable=evidence.unreadable + tuple(command_problems)
            )
    report = {
        "root": str(root),
        "available": True,
        "problem": None,
        "folders": len(folders),
        "events_files_read": sum(1 for r in events.values() if r.ledger is not None),
        "events_bytes_read": sum(r.bytes_read for r in events.values()),
        "events_lines_read": sum(r.lines_read for r in events.values()),
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
    if request.run_missing:
        # Which folder its run wrote to is unknown: the root alone cannot prove "never seen".
        return [], MSG_RUN_ROW_MISSING.format(run_id=request.run_id)
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


def _position_moved(request: EvidenceRequest, positions: PositionsSnapshot, *, root: Path) -> Sighting | None:
    """A fresh positions.json moved the order's way since its baseline (missing or stale: nothing)."""
    if request.baseline is None or not positions.available:
        return None
    return position_moved(
        {"positions_baseline": request.baseline},
        side=request.side,
        symbol=request.symbol,
        quantities=positions.quantities,
        path=str(root / POSITIONS_FILE),
    )


def _commands_waiting(
    request: EvidenceRequest,
    folders: list[CommandsFolder],
    *,
    results: list[tuple[Sighting | None, str | None, str]],
    now: datetime,
) -> tuple[list[Sighting], list[str]]:
    """The unexpired submit commands naming the order, and the command files it cannot trust.

    A command whose own result says its submit failed holds nothing any more.
    """
    failed_id = None
    if request.command is not None and any(
        s is not None and s.status in RESULT_REJECTED for s, _, _ in results
    ):
        failed_id = request.command.command_id
    waiting, problems = [], []
    for folder in folders:
        if folder.problem is not None:
            problems.append(folder.problem)
        waiting += [
            c.sighting
            for c in folder.holding(order_id=request.order_id, tags=request.tags, now=now)
            if c.command_id is None or c.command_id != failed_id
        ]
        problems += folder.unreadable_for(order_id=request.order_id, tags=request.tags)
    return waiting, problems


def _events_view(result: ReadResult, *, tags: frozenset[str], since: datetime) -> EventsView | None:
    """What one events file says about one order; None when the file does not exist."""
    ledger = result.ledger
    if result.problem is not None:
        return EventsView(result.path, unreadable=(result.problem,))
    if ledger is None:
        return None
    unreadable = []
    if not ledger.covers(since):
        unreadable.append(ledger.cut or "not read from its start")
    if result.partial_untagged:
        unreadable.append(MSG_PARTIAL_LINE)
    unreadable.extend(MSG_PARTIAL_TAG.format(tag=t) for t in sorted(tags & result.partial_tags))
    unreadable.extend(MSG_BAD_LINE.format(tag=t) for t in sorted(tags & ledger.bad_line_tags))
    histories = tuple(ledger.tags[t] for t in sorted(tags) if t in ledger.tags)
    return EventsView(result.path, histories=histories, unreadable=tuple(unreadable))
