"""Broker evidence, from real folders: where each file is looked for, bounded reads, bad files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from recovery.gates.events import CHUNK_BYTES, MSG_PARTIAL_LINE, LedgerStore
from recovery.gates.evidence import order_tags, submit_command_get
from recovery.gates.evidence_read import (
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


def gather(
    root: Path,
    *requests: EvidenceRequest,
    path_map: Any = (),
    max_bytes: int = 1 << 26,
    store: LedgerStore | None = None,
    now: dt.datetime = NOW,
) -> Any:
    """One gathering; a fresh store (this host read nothing before) unless one is given."""
    return evidence_gather(
        root=root,
        requests=list(requests),
        now=now,
        path_map=path_map,
        open_orders_max_age=30,
        events_max_bytes=max_bytes,
        clock_skew_seconds=60,
        store=store or LedgerStore(None),
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


def test_an_order_whose_run_row_is_missing_is_unavailable_not_checked_at_the_root_alone(root: Path) -> None:
    req = request()
    missing = EvidenceRequest(**{**req.__dict__, "run_missing": True})
    evidence = gather(root, missing).orders[55]
    assert evidence.unavailable == "run 7 has no trade_runs row, so its output folder is unknown"


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


def test_a_terminal_last_event_closes_the_order_and_is_not_seen(root: Path) -> None:
    write_events(root, [event(status="Invalid")])
    evidence = gather(root, request()).orders[55]
    assert evidence.seen is None and evidence.closed.status == "INVALID"


def test_submitted_cancel_pending_canceled_without_a_fill_is_closed(root: Path) -> None:
    """How every real cancel at the broker looks: rule 5b, not "seen"."""
    write_events(root, [event(status=s) for s in ("Submitted", "CancelPending", "Canceled")])
    evidence = gather(root, request()).orders[55]
    assert evidence.seen is None and evidence.closed.status == "CANCELED"


def test_a_fill_is_never_forgotten_whatever_comes_after(root: Path) -> None:
    write_events(root, [event(status="PartiallyFilled", filled=3), event(status="Canceled")])
    evidence = gather(root, request()).orders[55]
    assert evidence.seen.status == "PARTIALLYFILLED" and evidence.closed is None


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


@pytest.mark.parametrize(
    "late_time",
    ["0001-01-01T00:00:00", "2026-11-23T09:00:00Z", "2026-11-24T10:55:00", "not a time", None],
)
def test_no_line_of_another_order_ends_the_read_whatever_its_time(root: Path, late_time: Any) -> None:
    """The fill, then lines of other orders whose times are older (C#'s default, yesterday,
    a naive New York time, garbage): the order is seen, not cancelled."""
    older = {"tag": "other", "status": "Submitted", "time": late_time}
    write_events(root, [event(status="Filled", filled=5, at=NOW - dt.timedelta(minutes=1)), older, older])
    assert gather(root, request()).orders[55].seen.status == "FILLED"


def test_a_lean_clock_far_behind_does_not_hide_the_event(root: Path) -> None:
    write_events(root, [event(status="Submitted", at=CREATED - dt.timedelta(hours=3))])
    assert gather(root, request()).orders[55].seen.status == "SUBMITTED"


def test_a_file_larger_than_the_cap_covers_only_orders_created_after_the_first_read(root: Path) -> None:
    write_events(root, [event(tag=f"new-{i}") for i in range(5_000)])
    store = LedgerStore(None)
    existing = gather(root, request(), max_bytes=CHUNK_BYTES, store=store).orders[55]
    assert "more than BRIDGE_EVENTS_MAX_READ_BYTES" in existing.unreadable[0]
    # An order created after this host began reading has all its events in what it reads.
    later = NOW + dt.timedelta(minutes=10)
    write_events(root, [event(tag="late-order", status="Submitted", at=later)])
    fresh = request(56, client="late-order", created_at=later)
    gathered = gather(root, request(), fresh, max_bytes=CHUNK_BYTES, store=store, now=later)
    assert gathered.orders[56].unreadable == () and gathered.orders[56].seen.status == "SUBMITTED"
    assert gathered.orders[55].unreadable  # still not covered: never "no evidence"


def test_positive_evidence_found_past_the_cap_still_counts(root: Path) -> None:
    write_events(root, [*(event(tag=f"new-{i}") for i in range(5_000)), event(status="Filled", filled=1)])
    evidence = gather(root, request(), max_bytes=CHUNK_BYTES).orders[55]
    assert evidence.seen.status == "FILLED" and evidence.unreadable


def test_a_line_being_written_that_names_the_order_is_unreadable_for_it(root: Path) -> None:
    write_events(root, [event(tag="other")], tail='{"tag": "run7-AAPL-1", "status": "Fil')
    gathered = gather(root, request(), request(56, client="other"))
    assert "its last line, naming 'run7-AAPL-1', is still being written" in gathered.orders[55].unreadable[0]
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


# --- submit commands waiting in commands/ (rule 5 from files) -----------------------------------


def write_command(folder: Path, name: str, **fields: Any) -> Path:
    """A command file as the backend's bridge writer lays it out (commands/<command_id>.json)."""
    payload = {
        "command_id": name,
        "type": "submit_order",
        "symbol": "AAPL",
        "quantity": 10.0,
        "tag": "run7-AAPL-1",
        "order_type": "MKT",
        "outside_rth": False,
        "actor": "system",
        "reason": "auto_trade_submit",
        "requested_at": stamp(NOW - dt.timedelta(seconds=30)),
        "expires_at": stamp(NOW + dt.timedelta(seconds=90)),
        "version": 1,
        "order_id": 55,
        **fields,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    (folder / "commands").mkdir(parents=True, exist_ok=True)
    path = folder / "commands" / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def test_a_command_file_naming_the_order_holds_it_though_its_params_do_not(root: Path) -> None:
    """The backend writes the file before it commits the order's params."""
    path = write_command(root, "submit_order_55_1764000000000")
    evidence = gather(root, request()).orders[55]
    assert evidence.waiting_command.path == str(path) and evidence.waiting_command.time == stamp(
        NOW + dt.timedelta(seconds=90)
    )


@pytest.mark.parametrize("by", ["order_id", "tag"])
def test_the_file_may_name_the_order_by_id_or_by_tag(root: Path, by: str) -> None:
    fields = {"order_id": None} if by == "tag" else {"tag": "someone-else"}
    write_command(root, "c1", **fields)
    assert gather(root, request()).orders[55].waiting_command is not None


def test_a_superseded_command_in_the_run_folder_still_holds_the_order(root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run_7"
    write_command(run_dir, "c2")
    params = {"submit_command": {"pending": False, "status": "superseded", "command_id": "c2"}}
    evidence = gather(root, request(output_dir=str(run_dir), params=params)).orders[55]
    assert evidence.waiting_command is not None


def test_an_expired_command_a_cancel_or_another_orders_holds_nothing(root: Path) -> None:
    write_command(root, "old", expires_at=stamp(NOW - dt.timedelta(seconds=1)))
    write_command(root, "cancel", type="cancel_order")
    write_command(root, "other", order_id=56, tag="other-tag")
    (root / "commands" / "half.json.tmp").write_text('{"type": "submit_order", "order_id": 55')
    assert gather(root, request()).orders[55].waiting_command is None


def test_without_a_readable_expiry_requested_at_plus_120_s_stands_in(root: Path) -> None:
    write_command(root, "a", expires_at="soon", requested_at=stamp(NOW - dt.timedelta(seconds=100)))
    assert gather(root, request()).orders[55].waiting_command is not None
    write_command(root, "a", expires_at="soon", requested_at=stamp(NOW - dt.timedelta(seconds=121)))
    assert gather(root, request()).orders[55].waiting_command is None


def test_a_command_whose_result_says_it_failed_holds_nothing(root: Path) -> None:
    write_command(root, "c3")
    (root / "command_results").mkdir()
    (root / "command_results" / "c3.json").write_text('{"status": "not_connected"}')
    evidence = gather(root, request(params={"submit_command": {"pending": True, "command_id": "c3"}})).orders[
        55
    ]
    assert evidence.waiting_command is None and evidence.submit_rejected


def test_a_command_file_that_cannot_be_read_leaves_the_order_it_names_alone(root: Path) -> None:
    (root / "commands").mkdir()
    (root / "commands" / "bad.json").write_text(
        '{"type": "submit_order", "order_id": 55, "tag": "run7-AAPL-1",'
    )
    gathered = gather(root, request(), request(56, client="other"))
    assert "bad.json: not a command the bridge could read" in gathered.orders[55].unreadable[0]
    assert gathered.orders[56].unreadable == ()


# --- positions against the order's baseline ------------------------------------------------


def write_positions(root: Path, items: list[dict[str, Any]], *, at: dt.datetime = NOW, **extra: Any) -> None:
    payload = {"items": items, "stale": False, "refreshed_at": stamp(at), **extra}
    (root / "positions.json").write_text(json.dumps(payload))


def baseline_request(side: str = "BUY", quantity: float = 100, **fields: Any) -> EvidenceRequest:
    """An order with the baseline the backend captures before it sends (positions_baseline)."""
    baseline = {"refreshed_at": stamp(CREATED), "items": [{"symbol": "AAPL", "quantity": quantity}]}
    req = request(params={"positions_baseline": baseline})
    return EvidenceRequest(**{**req.__dict__, "side": side, "symbol": "AAPL", "baseline": baseline, **fields})


@pytest.mark.parametrize(
    ("side", "now", "moved"),
    [
        ("BUY", 110, True),
        ("BUY", 100, False),
        ("BUY", 90, False),
        ("SELL", 90, True),
        ("SELL", 100, False),
        ("SELL", 110, False),
    ],
)
def test_a_position_that_moved_the_orders_way_is_seen(root: Path, side: str, now: float, moved: bool) -> None:
    write_positions(
        root, [{"symbol": "aapl ", "quantity": now, "avg_cost": 180.0}, {"symbol": "MSFT", "quantity": 5}]
    )
    evidence = gather(root, baseline_request(side)).orders[55]
    assert (evidence.seen is not None) is moved
    if moved:
        assert evidence.seen.describe().startswith(
            f"position in AAPL moved the order's way since its baseline (100 -> {now:g})"
        )


def test_a_symbol_gone_from_the_positions_holds_zero(root: Path) -> None:
    write_positions(root, [{"symbol": "MSFT", "position": 5}])
    assert gather(root, baseline_request("SELL")).orders[55].seen.kind == "position"


@pytest.mark.parametrize("extra", [{"stale": True}, {"refreshed_at": stamp(NOW - dt.timedelta(hours=1))}])
def test_a_stale_or_old_positions_file_proves_nothing(root: Path, extra: dict[str, Any]) -> None:
    write_positions(root, [{"symbol": "AAPL", "quantity": 500}], **extra)
    assert gather(root, baseline_request()).orders[55].seen is None


def test_a_positions_file_that_cannot_be_parsed_leaves_orders_with_a_baseline_alone(root: Path) -> None:
    (root / "positions.json").write_text("{not json")
    gathered = gather(root, baseline_request(), request(56, client="no-baseline"))
    assert "positions.json: invalid_json" in gathered.orders[55].unreadable[0]
    assert gathered.orders[56].unreadable == ()


def test_a_moved_position_beats_terminal_events(root: Path) -> None:
    write_positions(root, [{"symbol": "AAPL", "quantity": 110}])
    write_events(root, [event(status="Submitted"), event(status="Canceled")])
    evidence = gather(root, baseline_request()).orders[55]
    assert evidence.seen.kind == "position" and evidence.closed is None
