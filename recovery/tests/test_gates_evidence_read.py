"""Broker evidence, from real folders: where each file is looked for, bounded reads, bad files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from recovery.gates.evidence import order_tags, submit_command_get
from recovery.gates.evidence_read import (
    CHUNK_BYTES,
    MSG_PARTIAL_LINE,
    EvidenceRequest,
    evidence_gather,
    path_map_parse,
    path_mapped,
)

NOW = dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)
CREATED = NOW - dt.timedelta(minutes=5)


def stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def request(
    order_id: int = 55,
    *,
    client: str = "run7-AAPL-1",
    run_id: int | None = 7,
    output_dir: Any = None,
    params: dict[str, Any] | None = None,
    created_at: dt.datetime = CREATED,
) -> EvidenceRequest:
    params = params or {}
    return EvidenceRequest(
        order_id=order_id,
        run_id=run_id,
        output_dir=output_dir,
        tags=order_tags(order_id=order_id, client_order_id=client, params=params),
        command=submit_command_get(params),
        created_at=created_at,
    )


def gather(root: Path, *requests: EvidenceRequest, path_map: Any = (), max_bytes: int = 1 << 26) -> Any:
    return evidence_gather(
        root=root,
        requests=list(requests),
        now=NOW,
        path_map=path_map,
        open_orders_max_age=30,
        events_max_bytes=max_bytes,
        clock_skew_seconds=60,
    )


def write_events(folder: Path, events: list[dict[str, Any]], tail: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "execution_events.jsonl"
    with path.open("a") as handle:
        handle.writelines(json.dumps(e) + "\n" for e in events)
        handle.write(tail)
    return path


def write_open_orders(folder: Path, tags: list[str], *, at: dt.datetime = NOW, **extra: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"items": [{"tag": t} for t in tags], "stale": False, "refreshed_at": stamp(at), **extra}
    (folder / "open_orders.json").write_text(json.dumps(payload))


def event(tag: str = "run7-AAPL-1", status: str = "Submitted", at: dt.datetime = NOW, **extra: Any) -> dict:
    return {"tag": tag, "status": status, "time": stamp(at), "order_id": 1, "filled": 0, **extra}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "lean_bridge"
    path.mkdir()
    return path


# --- the bridge root ------------------------------------------------------------------


def test_a_missing_bridge_root_is_unavailable_for_the_whole_sweep(tmp_path: Path) -> None:
    gathered = gather(tmp_path / "nowhere", request())
    assert not gathered.root_available
    assert gathered.root_problem == f"the bridge root {tmp_path / 'nowhere'} does not exist on this host"
    assert gathered.orders == {}


def test_a_bridge_root_that_is_a_file_cannot_be_listed(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    gathered = gather(tmp_path / "file", request())
    assert not gathered.root_available and "cannot be listed" in gathered.root_problem


def test_an_empty_bridge_root_is_no_evidence(root: Path) -> None:
    evidence = gather(root, request()).orders[55]
    assert (evidence.open, evidence.seen, evidence.unreadable, evidence.unavailable) == (None, None, (), None)
    assert evidence.folders == (str(root),)


# --- where each order's evidence lives --------------------------------------------------


def test_the_run_output_folder_is_read_for_the_runs_orders(root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "run_7"
    write_events(run_dir, [event(status="Filled", filled=10)])
    write_open_orders(run_dir, ["someone-else"])
    evidence = gather(root, request(output_dir=str(run_dir))).orders[55]
    assert evidence.folders == (str(root), str(run_dir))
    assert evidence.seen.status == "FILLED" and evidence.seen.filled == 10
    assert evidence.seen.path == str(run_dir / "execution_events.jsonl")


def test_the_run_folders_fresh_snapshot_lists_the_order(root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run_7"
    write_open_orders(run_dir, ["run7-AAPL-1"])
    evidence = gather(root, request(output_dir=str(run_dir))).orders[55]
    assert evidence.open.path == str(run_dir / "open_orders.json") and evidence.open.tag == "run7-AAPL-1"


@pytest.mark.parametrize(
    "extra", [{"stale": True}, {"refreshed_at": "2026-11-24T15:00:00Z"}, {"refreshed_at": None}]
)
def test_a_stale_or_old_snapshot_proves_nothing(root: Path, extra: dict[str, Any]) -> None:
    write_open_orders(root, ["run7-AAPL-1"], **extra)
    evidence = gather(root, request()).orders[55]
    assert evidence.open is None and evidence.unreadable == ()


@pytest.mark.parametrize("text", ["{not json", '{"items": 5}', '{"items": [], "stale": "no"}'])
def test_a_snapshot_that_cannot_be_parsed_is_unreadable(root: Path, text: str) -> None:
    (root / "open_orders.json").write_text(text)
    evidence = gather(root, request()).orders[55]
    assert evidence.open is None and evidence.unreadable[0].startswith(str(root / "open_orders.json"))


def test_a_run_folder_that_does_not_exist_here_is_unavailable(root: Path, tmp_path: Path) -> None:
    evidence = gather(root, request(output_dir="/data/share/stock/data/lean_bridge/run_7")).orders[55]
    assert evidence.unavailable == (
        "run 7's output folder /data/share/stock/data/lean_bridge/run_7 does not exist on this host"
    )


@pytest.mark.parametrize("output_dir", ["relative/run_7", 5, ["x"], ""])
def test_a_run_folder_that_is_not_an_absolute_path_is_unavailable(root: Path, output_dir: Any) -> None:
    assert "is not an absolute path" in gather(root, request(output_dir=output_dir)).orders[55].unavailable


def test_the_path_map_finds_the_backends_folder_where_this_host_mounts_it(root: Path, tmp_path: Path) -> None:
    write_events(tmp_path / "mnt" / "lean_bridge" / "run_7", [event()])
    mapping = path_map_parse(f"/data/share/stock/data={tmp_path / 'mnt'}")
    evidence = gather(root, request(output_dir="/data/share/stock/data/lean_bridge/run_7"), path_map=mapping)
    assert evidence.orders[55].seen.status == "SUBMITTED"


def test_path_map_parsing_and_longest_prefix() -> None:
    mapping = path_map_parse(" /data=/mnt/a , /data/share/=/mnt/b ")
    assert mapping == (("/data/share", "/mnt/b"), ("/data", "/mnt/a"))
    assert path_mapped("/data/share/x", mapping) == "/mnt/b/x"
    assert path_mapped("/data/x", mapping) == "/mnt/a/x"
    assert path_mapped("/database/x", mapping) == "/database/x"  # a prefix of a name is no match
    assert path_map_parse("") == ()
    for bad in ("relative=/x", "/x", "/x="):
        with pytest.raises(ValueError, match="is not /backend/prefix=/local/prefix"):
            path_map_parse(bad)


def test_a_direct_order_reads_its_direct_folder_and_its_direct_tag(root: Path) -> None:
    write_events(root / "direct_55", [event(tag="direct:55")])
    evidence = gather(root, request(run_id=None, client="manual-1")).orders[55]
    assert evidence.folders == (str(root), str(root / "direct_55"))
    assert evidence.seen.tag == "direct:55"


def test_a_direct_order_without_a_folder_has_no_evidence(root: Path) -> None:
    evidence = gather(root, request(run_id=None)).orders[55]
    assert evidence.folders == (str(root),) and evidence.unavailable is None


def test_the_root_events_file_counts_for_every_order(root: Path) -> None:
    write_events(root, [event(tag="bt-9", status="PartiallyFilled", filled=2)])
    evidence = gather(root, request(params={"broker_order_tag": "bt-9"})).orders[55]
    assert evidence.seen.tag == "bt-9" and evidence.seen.filled == 2


def test_done_events_are_kept_but_are_not_seen(root: Path) -> None:
    write_events(root, [event(status="Invalid")])
    evidence = gather(root, request()).orders[55]
    assert evidence.seen is None and evidence.done.status == "INVALID"


def test_each_file_is_read_once_for_many_orders(root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run_7"
    write_events(run_dir, [event(tag=f"o{i}") for i in range(5)])
    requests = [request(i, client=f"o{i}", output_dir=str(run_dir)) for i in range(5)]
    gathered = gather(root, *requests)
    assert gathered.report["events_files_read"] == 1
    assert all(gathered.orders[i].seen.tag == f"o{i}" for i in range(5))


# --- command results ---------------------------------------------------------------------


def command_params(command_id: str = "submit_order_55_1") -> dict[str, Any]:
    return {"submit_command": {"pending": True, "command_id": command_id, "requested_at": stamp(CREATED)}}


@pytest.mark.parametrize("where", ["root", "run"])
def test_a_submitted_result_in_either_folder_is_seen(root: Path, tmp_path: Path, where: str) -> None:
    run_dir = tmp_path / "run_7"
    folder = root if where == "root" else run_dir
    (folder / "command_results").mkdir(parents=True)
    (folder / "command_results" / "submit_order_55_1.json").write_text('{"status": "submitted"}')
    run_dir.mkdir(exist_ok=True)
    evidence = gather(root, request(output_dir=str(run_dir), params=command_params())).orders[55]
    assert evidence.seen.kind == "command_result" and evidence.seen.status == "submitted"


def test_a_rejected_result_lets_the_order_go(root: Path) -> None:
    (root / "command_results").mkdir()
    (root / "command_results" / "submit_order_55_1.json").write_text('{"status": "not_connected"}')
    evidence = gather(root, request(params=command_params())).orders[55]
    assert evidence.seen is None and evidence.submit_rejected


def test_a_result_file_that_is_a_folder_is_unreadable(root: Path) -> None:
    (root / "command_results" / "submit_order_55_1.json").mkdir(parents=True)
    evidence = gather(root, request(params=command_params())).orders[55]
    assert "submit_order_55_1.json: unreadable" in evidence.unreadable[0]


# --- bounded reads of growing event files -------------------------------------------------------


def test_reading_stops_at_the_first_event_older_than_the_oldest_order(root: Path) -> None:
    old = [event(tag=f"old-{i}", at=CREATED - dt.timedelta(hours=2)) for i in range(20_000)]
    # An event for this very tag far older than the order cannot be about it.
    path = write_events(
        root, [event(status="Filled", at=CREATED - dt.timedelta(days=1)), *old, event(tag="x")]
    )
    gathered = gather(root, request())
    assert gathered.orders[55].seen is None
    assert gathered.report["events_bytes_read"] <= CHUNK_BYTES < path.stat().st_size


def test_events_within_the_clock_skew_still_count(root: Path) -> None:
    write_events(root, [event(status="Submitted", at=CREATED - dt.timedelta(seconds=30))])
    assert gather(root, request()).orders[55].seen.status == "SUBMITTED"


def test_a_file_cut_by_the_read_cap_before_the_boundary_is_unreadable(root: Path) -> None:
    write_events(root, [event(tag=f"new-{i}") for i in range(5_000)])
    evidence = gather(root, request(), max_bytes=CHUNK_BYTES).orders[55]
    assert "raise BRIDGE_EVENTS_MAX_READ_BYTES" in evidence.unreadable[0]


def test_the_read_cap_leaves_only_orders_older_than_what_was_read(root: Path) -> None:
    """One ancient stale order must not hold up the recovery of every other one."""
    hours = [
        event(tag=f"h-{i}", at=NOW - dt.timedelta(hours=10) + dt.timedelta(seconds=9 * i))
        for i in range(4_000)
    ]
    write_events(root, hours)
    ancient = request(1, client="ancient", created_at=NOW - dt.timedelta(days=3))
    recent = request(2, client="recent", created_at=NOW - dt.timedelta(minutes=5))
    gathered = gather(root, ancient, recent, max_bytes=CHUNK_BYTES)
    assert "raise BRIDGE_EVENTS_MAX_READ_BYTES" in gathered.orders[1].unreadable[0]
    assert gathered.orders[2].unreadable == ()


def test_positive_evidence_found_before_the_cap_still_counts(root: Path) -> None:
    write_events(root, [*(event(tag=f"new-{i}") for i in range(5_000)), event(status="Filled", filled=1)])
    evidence = gather(root, request(), max_bytes=CHUNK_BYTES).orders[55]
    assert evidence.seen.status == "FILLED" and evidence.unreadable


def test_a_line_being_written_that_names_the_order_is_unreadable_for_it(root: Path) -> None:
    write_events(root, [event(tag="other")], tail='{"tag": "run7-AAPL-1", "status": "Fil')
    gathered = gather(root, request(), request(56, client="other"))
    assert "a line naming 'run7-AAPL-1' is not valid JSON" in gathered.orders[55].unreadable[0]
    assert gathered.orders[56].unreadable == () and gathered.orders[56].seen.tag == "other"


def test_a_line_being_written_that_names_no_tag_yet_is_unreadable_for_all(root: Path) -> None:
    write_events(root, [event(tag="other")], tail='{"order_id": 4, "sta')
    evidence = gather(root, request()).orders[55]
    assert evidence.unreadable == (f"{root / 'execution_events.jsonl'}: {MSG_PARTIAL_LINE}",)


def test_a_complete_last_line_without_a_newline_is_read(root: Path) -> None:
    write_events(root, [], tail=json.dumps(event(status="Submitted")))
    assert gather(root, request()).orders[55].seen.status == "SUBMITTED"


def test_garbage_lines_that_name_no_tag_are_passed_over(root: Path) -> None:
    write_events(root, [event(tag="x")], tail="not json at all\n[1, 2]\n\n")
    evidence = gather(root, request()).orders[55]
    assert evidence.unreadable == () and evidence.seen is None


def test_an_events_file_that_is_a_folder_is_unreadable(root: Path) -> None:
    (root / "execution_events.jsonl").mkdir()
    assert "unreadable" in gather(root, request()).orders[55].unreadable[0]


def test_lines_across_chunk_boundaries_are_whole(root: Path) -> None:
    padding = "x" * (CHUNK_BYTES - 40)
    write_events(root, [event(status="Filled", filled=1, pad=padding), event(tag="y", pad=padding)])
    assert gather(root, request()).orders[55].seen.status == "FILLED"


def test_a_wanted_event_deep_among_other_orders_lines_is_found(root: Path) -> None:
    others = [event(tag=f"other-{i}") for i in range(8_000)]  # several chunks of recent lines
    write_events(root, [*others[:3_000], event(status="Filled", filled=2), *others[3_000:]])
    assert gather(root, request()).orders[55].seen.status == "FILLED"


def test_a_wanted_tag_written_with_escapes_is_still_found(root: Path) -> None:
    others = [event(tag=f"other-{i}") for i in range(8_000)]
    escaped = '{"tag": "run7-AAPL-\\u0031", "status": "Submitted", "time": "' + stamp(NOW) + '"}\n'
    path = write_events(root, others[:3_000])
    with path.open("a") as handle:
        handle.write(escaped)
    write_events(root, others[3_000:])
    assert gather(root, request()).orders[55].seen.status == "SUBMITTED"


def test_a_last_line_longer_than_a_chunk_that_is_still_being_written_is_unreadable(root: Path) -> None:
    write_events(root, [event(tag="other")], tail='{"message": "' + "x" * (CHUNK_BYTES + 5000))
    evidence = gather(root, request()).orders[55]
    assert evidence.unreadable == (f"{root / 'execution_events.jsonl'}: {MSG_PARTIAL_LINE}",)
