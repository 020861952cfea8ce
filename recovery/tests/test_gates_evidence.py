"""Broker evidence, pure: tags, event statuses, command results, and how they combine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from recovery.gates.evidence import (
    DONE_STATUSES,
    KIND_COMMAND_RESULT,
    KIND_EVENT,
    RESULT_REJECTED,
    SEEN_STATUSES,
    EventsView,
    Sighting,
    TagHistory,
    broker_verdict,
    command_result_parse,
    event_has_fill,
    event_is_done,
    event_sighting,
    evidence_combine,
    evidence_covers,
    fragment_tags,
    order_tags,
    submit_command_get,
)

# --- tags: one resolution, as the backend does it ------------------------------------


def tags(params: dict[str, Any], client: str = "run7-AAPL-1", order_id: int = 55) -> frozenset[str]:
    return order_tags(order_id=order_id, client_order_id=client, params=params)


def test_plain_order_matches_its_client_id_and_its_direct_tag() -> None:
    assert tags({}) == {"run7-AAPL-1", "direct:55"}


def test_broker_order_tag_wins_over_event_tag_and_both_forms_match() -> None:
    assert tags({"broker_order_tag": " bt-1 ", "event_tag": "ev-1"}) == {"bt-1", "run7-AAPL-1", "direct:55"}


def test_event_tag_counts_when_there_is_no_broker_tag() -> None:
    assert tags({"event_tag": "ev-1"}) == {"ev-1", "run7-AAPL-1", "direct:55"}
    assert tags({"broker_order_tag": "", "event_tag": "ev-1"}) == {"ev-1", "run7-AAPL-1", "direct:55"}


def test_a_direct_event_tag_copied_onto_another_order_does_not_count() -> None:
    # direct:9 is another order's tag; this order's client id is not direct:.
    assert tags({"event_tag": "direct:9"}) == {"run7-AAPL-1", "direct:55"}
    # ... but on a direct order it is its own.
    assert tags({"event_tag": "direct:9"}, client="direct:9") == {"direct:9", "direct:55"}


CHAIN = {"origin_order_id": 41, "origin_client_order_id": "run7-AAPL", "root_order_id": 40,
         "root_client_order_id": "run7"}  # fmt: skip


@pytest.mark.parametrize(
    "inherited",
    [
        {"broker_order_tag": "run7-AAPL", "event_tag": "run7-AAPL"},  # the origin's client id
        {"broker_order_tag": "run7"},  # the chain's root
        {"event_tag": "direct:41"},  # the origin's direct tag
        {"event_tag": "direct:40"},
    ],
)
def test_a_replacement_is_read_by_its_own_tags_never_its_chains(inherited: dict[str, Any]) -> None:
    """A replacement that an earlier sweep wrote with the original's tags: the original's
    events and open orders are the original's; matching them would call the replacement seen."""
    params = {**inherited, "auto_recovery": {"attempts": 1, **CHAIN}}
    assert tags(params, client="run7-AAPL-r1") == {"run7-AAPL-r1", "direct:55"}


def test_a_replacement_keeps_a_tag_of_its_own() -> None:
    # What the backend's loop sets when it sends it: its own client id.
    params = {"broker_order_tag": "run7-AAPL-r1", "auto_recovery": {"attempts": 1, **CHAIN}}
    assert tags(params, client="run7-AAPL-r1") == {"run7-AAPL-r1", "direct:55"}
    params = {"broker_order_tag": "direct:55", "auto_recovery": {"attempts": 1, **CHAIN}}
    assert tags(params, client="run7-AAPL-r1") == {"run7-AAPL-r1", "direct:55"}


@pytest.mark.parametrize("odd", [None, 5, True, ["x"], {"a": 1}, "   "])
def test_tags_that_are_not_text_are_ignored(odd: Any) -> None:
    assert tags({"broker_order_tag": odd, "event_tag": odd}) == {"run7-AAPL-1", "direct:55"}


# --- submit commands ---------------------------------------------------------------------


def test_submit_command_reads_its_times_and_a_safe_command_id() -> None:
    command = submit_command_get(
        {
            "submit_command": {
                "pending": True,
                "command_id": "submit_order_55_1764000000000",
                "requested_at": "2026-11-24T15:58:00Z",
                "expires_at": "2026-11-24T16:00:00Z",
            }
        }
    )
    assert command is not None and command.pending
    assert command.command_id == "submit_order_55_1764000000000"
    assert command.requested_at.isoformat() == "2026-11-24T15:58:00+00:00"
    assert command.expires_at.isoformat() == "2026-11-24T16:00:00+00:00"
    assert not command.bad_command_id


@pytest.mark.parametrize("command_id", ["../../etc/passwd", "a/b", "", ".hidden", "x" * 300, 12])
def test_a_command_id_that_is_no_safe_file_name_is_flagged(command_id: Any) -> None:
    command = submit_command_get({"submit_command": {"pending": True, "command_id": command_id}})
    assert command.command_id is None and command.bad_command_id


@pytest.mark.parametrize("value", [None, "x", 5, [1]])
def test_no_submit_command_object_means_none(value: Any) -> None:
    assert submit_command_get({"submit_command": value}) is None


# --- events --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(SEEN_STATUSES) + ["Submitted", "partiallyFilled", " filled "])
def test_every_working_or_filled_status_means_seen(status: str) -> None:
    assert not event_is_done({"tag": "t", "status": status, "filled": 0})


@pytest.mark.parametrize("status", sorted(DONE_STATUSES) + ["Canceled", "invalid"])
def test_terminal_statuses_without_a_fill_mean_the_broker_is_done(status: str) -> None:
    assert event_is_done({"tag": "t", "status": status, "filled": 0})
    assert event_is_done({"tag": "t", "status": status})


@pytest.mark.parametrize("filled", [10, -10, 0.5, "3", 1e400, 10**400])
def test_any_fill_means_seen_even_with_a_terminal_status(filled: Any) -> None:
    assert not event_is_done({"tag": "t", "status": "Canceled", "filled": filled})


@pytest.mark.parametrize("filled", ["ten", True, [1], {"q": 1}, float("nan")])
def test_a_fill_that_is_not_a_number_is_not_proof_of_none(filled: Any) -> None:
    assert not event_is_done({"tag": "t", "status": "Canceled", "filled": filled})


@pytest.mark.parametrize("status", [None, "", 5, "UpdateSubmitted", "None", "Whatever"])
def test_unknown_or_missing_statuses_are_taken_as_seen(status: Any) -> None:
    assert not event_is_done({"tag": "t", "status": status})


def test_event_sighting_keeps_what_ops_need_and_stays_json_safe() -> None:
    sighting = event_sighting(
        {"tag": "t", "status": "Filled", "filled": 1e400, "time": "2026-11-24T15:59:00Z"},
        tag="t",
        path="/b/e",
    )
    assert sighting.as_dict() == {
        "kind": KIND_EVENT,
        "path": "/b/e",
        "tag": "t",
        "status": "FILLED",
        "time": "2026-11-24T15:59:00Z",
    }
    assert sighting.describe() == "FILLED event for tag 't' at 2026-11-24T15:59:00Z in /b/e"


@pytest.mark.parametrize(
    ("filled", "fill"), [(None, False), (0, False), ("0", False), (2, True), ("2.5", True), ("lots", True)]
)
def test_a_fill_is_any_filled_that_is_not_a_zero_number(filled: Any, fill: bool) -> None:
    assert event_has_fill({"tag": "t", "status": "Canceled", "filled": filled}) is fill


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        (b'{"tag": "run7-AAPL-1", "status": "Fil', ["run7-AAPL-1"]),
        (b'{"order_id": 5, "tag":"a\\"b", "x', ['a"b']),
        (b'{"order_id": 5, "status": "Filled", "ta', None),
        (b"garbage", None),
    ],
)
def test_fragment_tags_finds_complete_tags_in_lines_that_do_not_parse(fragment: bytes, expected: Any) -> None:
    assert fragment_tags(fragment) == expected


# --- command results -------------------------------------------------------------------------


def test_submitted_result_is_a_sighting() -> None:
    sighting, problem = command_result_parse(b'{"status": "Submitted", "processed_at": "t"}', path="/r.json")
    assert problem is None
    assert sighting == Sighting(KIND_COMMAND_RESULT, "/r.json", status="submitted", time="t")


@pytest.mark.parametrize("status", sorted(RESULT_REJECTED))
def test_every_reject_status_is_understood(status: str) -> None:
    sighting, problem = command_result_parse(f'{{"status": "{status}"}}'.encode(), path="/r.json")
    assert problem is None and sighting.status == status


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{", "invalid_json"),
        (b"[]", "bad_shape"),
        (b"{}", "no_status"),
        (b'{"status": 5}', "no_status"),
        (b'{"status": "received"}', "unknown_status 'received'"),
        (b"\xff\xfe\x00", "invalid_json"),
    ],
)
def test_a_result_that_cannot_be_understood_says_why(raw: bytes, problem: str) -> None:
    assert command_result_parse(raw, path="/r.json") == (None, problem)


# --- combining --------------------------------------------------------------------------------

TAGS = frozenset({"run7-AAPL-1", "direct:55"})


def combine(**parts: Any) -> Any:
    values: dict[str, Any] = {
        "tags": TAGS,
        "command": None,
        "folders": ("/b",),
        "snapshots": [],
        "events": [],
        "results": [],
        "unavailable": None,
        "tolerance": timedelta(seconds=60),
    }
    values.update(parts)
    return evidence_combine(**values)


def test_nothing_anywhere_is_no_evidence() -> None:
    evidence = combine(snapshots=[("/b/open_orders.json", frozenset({"other"}), None)])
    assert (evidence.open, evidence.seen, evidence.unreadable, evidence.unavailable) == (None, None, (), None)


def test_a_snapshot_listing_any_tag_is_open_at_broker() -> None:
    evidence = combine(
        snapshots=[
            ("/b/open_orders.json", None, None),
            ("/run/open_orders.json", frozenset({"direct:55"}), None),
        ]
    )
    assert evidence.open == Sighting("open_orders", "/run/open_orders.json", tag="direct:55")


def test_an_unreadable_snapshot_is_named() -> None:
    evidence = combine(snapshots=[("/b/open_orders.json", None, "invalid_json")])
    assert evidence.unreadable == ("/b/open_orders.json: invalid_json",)


def history(
    status: str, *, position: int, time: str | None = None, filled: Any = 0, fill: bool = False
) -> Any:
    event = {"tag": "run7-AAPL-1", "status": status, "time": time, "filled": filled}
    sighting = event_sighting(event, tag="run7-AAPL-1", path="/b/e")
    return TagHistory(
        last=sighting, last_done=event_is_done(event), fill=sighting if fill else None, position=position
    )


def view(*histories: Any, path: str = "/b/execution_events.jsonl", unreadable: tuple = ()) -> EventsView:
    return EventsView(path, histories=histories, unreadable=unreadable)


TOLERANCE = timedelta(seconds=60)


def test_in_one_file_the_latest_line_over_the_orders_tags_decides() -> None:
    working, cancelled = history("Submitted", position=10), history("Canceled", position=20)
    assert broker_verdict([view(working, cancelled)], tolerance=TOLERANCE) == (None, cancelled.last)
    later = history("Submitted", position=30)
    assert broker_verdict([view(cancelled, later)], tolerance=TOLERANCE) == (later.last, None)


def test_a_fill_in_any_file_is_seen_whatever_the_last_lines_say() -> None:
    filled = history("Canceled", position=5, filled=3, fill=True)
    cancelled = history("Canceled", position=50)
    seen, closed = broker_verdict([view(cancelled), view(filled, path="/run/e")], tolerance=TOLERANCE)
    assert seen == filled.fill and closed is None


@pytest.mark.parametrize(
    ("working_time", "terminal_time", "outcome"),
    [
        ("2026-11-24T15:00:00Z", "2026-11-24T15:00:30Z", "seen"),  # within the tolerance
        ("2026-11-24T15:00:00Z", "2026-11-24T15:05:00Z", "closed"),  # later by more
        ("2026-11-24T15:05:00Z", "2026-11-24T15:00:00Z", "seen"),
        (None, "2026-11-24T15:05:00Z", "seen"),  # no time to compare: working wins
        ("2026-11-24T15:00:00Z", "0001-01-01T00:00:00", "seen"),
    ],
)
def test_across_files_working_wins_unless_terminal_is_later_by_more_than_the_tolerance(
    working_time: Any, terminal_time: Any, outcome: str
) -> None:
    working = history("Submitted", position=900, time=working_time)
    terminal = history("Canceled", position=1, time=terminal_time)
    seen, closed = broker_verdict([view(working), view(terminal, path="/run/e")], tolerance=TOLERANCE)
    assert ("seen" if seen else "closed" if closed else None) == outcome


def test_unreadable_lines_of_a_file_are_named() -> None:
    run = view(
        path="/run/execution_events.jsonl", unreadable=("a line naming 'direct:55' is not valid JSON",)
    )
    evidence = combine(events=[view(history("Canceled", position=3)), run])
    assert evidence.seen is None and evidence.closed.status == "CANCELED"
    assert evidence.unreadable == (
        "/run/execution_events.jsonl: a line naming 'direct:55' is not valid JSON",
    )


def test_a_submitted_result_is_superseded_by_a_terminal_last_event() -> None:
    command = submit_command_get({"submit_command": {"pending": True, "command_id": "c1"}})
    submitted = Sighting(KIND_COMMAND_RESULT, "/b/command_results/c1.json", status="submitted")
    evidence = combine(
        command=command,
        results=[(submitted, None, submitted.path)],
        events=[view(history("Canceled", position=3))],
    )
    assert evidence.seen is None and evidence.closed.status == "CANCELED"


def test_a_submitted_result_is_seen_and_a_rejected_one_is_not() -> None:
    command = submit_command_get({"submit_command": {"pending": True, "command_id": "c1"}})
    submitted = Sighting(KIND_COMMAND_RESULT, "/b/command_results/c1.json", status="submitted")
    evidence = combine(command=command, results=[(submitted, None, submitted.path)])
    assert evidence.seen == submitted and evidence.command_id == "c1"
    rejected = Sighting(KIND_COMMAND_RESULT, "/b/command_results/c1.json", status="not_connected")
    evidence = combine(command=command, results=[(rejected, None, rejected.path)])
    assert evidence.seen is None and evidence.submit_rejected


def test_an_unusable_command_id_is_unreadable_evidence() -> None:
    command = submit_command_get({"submit_command": {"pending": True, "command_id": "../x"}})
    assert combine(command=command).unreadable == (
        "params.submit_command.command_id: not a usable file name",
    )


def test_evidence_covers_the_order_only_while_its_tags_and_command_stay() -> None:
    evidence = combine()
    same = {"order_id": 55, "client_order_id": "run7-AAPL-1"}
    assert evidence_covers(evidence, params={}, **same)
    assert not evidence_covers(evidence, params={"broker_order_tag": "new-tag"}, **same)
    assert not evidence_covers(evidence, params={"submit_command": {"command_id": "c9"}}, **same)
    assert evidence.as_dict()["tags"] == ["direct:55", "run7-AAPL-1"]
