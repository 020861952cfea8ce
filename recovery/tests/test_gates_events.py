"""execution_events.jsonl read forward from where this host left off: file order, never time."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from recovery.gates.events import CHUNK_BYTES, Ledger, LedgerStore, ledger_read
from recovery.tests.test_proof_bad_input import PROOF, SEED

NOW = dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)
CAP = 1 << 26


def line(tag: str = "t", status: str = "Submitted", **extra: Any) -> str:
    return json.dumps({"tag": tag, "status": status, "time": "2026-11-24T15:59:00Z", **extra}) + "\n"


def append(path: Path, *lines: str) -> None:
    with path.open("a") as handle:
        handle.write("".join(lines))


def read(path: Path, kept: Ledger | None = None, *, max_bytes: int = CAP, now: dt.datetime = NOW) -> Any:
    result, _ = ledger_read(path, kept=kept, now=now, max_bytes=max_bytes)
    return result


def last(result: Any, tag: str = "t") -> tuple[str | None, bool, bool]:
    history = result.ledger.tags[tag]
    return history.last.status, history.last_done, history.fill is not None


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return tmp_path / "execution_events.jsonl"


def test_a_missing_file_is_no_ledger(events: Path) -> None:
    assert read(events).ledger is None and read(events).problem is None


def test_the_last_line_in_file_order_decides_and_a_fill_stays(events: Path) -> None:
    append(events, line(status="Submitted"), line("u"), line(status="PartiallyFilled", filled=2))
    first = read(events)
    assert last(first) == ("PARTIALLYFILLED", False, True)
    append(events, line("u", "Canceled"), line(status="Canceled"))
    second = read(events, first.ledger)
    assert last(second) == ("CANCELED", True, True)  # the fill is never forgotten
    assert last(second, "u") == ("CANCELED", True, False)


def test_a_later_read_reads_only_what_was_appended(events: Path) -> None:
    append(events, *(line(f"o{i}") for i in range(2_000)))
    first = read(events)
    addition = line(status="Filled", filled=1)
    append(events, addition)
    second = read(events, first.ledger)
    assert (second.bytes_read, second.lines_read) == (len(addition), 1)
    assert last(second) == ("FILLED", False, True)


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00", "2026-11-24T10:58:00", "2020-01-01T00:00:00Z", "?"])
def test_times_decide_nothing(events: Path, time: str) -> None:
    append(events, line(status="Canceled", time="2026-11-24T15:59:59Z"), line(status="Submitted", time=time))
    assert last(read(events)) == ("SUBMITTED", False, False)


def test_a_truncated_file_is_read_again_from_the_top(events: Path) -> None:
    append(events, line(status="Filled", filled=3), line("u"))
    first = read(events)
    events.write_text(line(status="Canceled"))
    second = read(events, first.ledger)
    assert last(second) == ("CANCELED", True, False) and set(second.ledger.tags) == {"t"}


def test_a_replaced_file_is_read_again_from_the_top(events: Path, tmp_path: Path) -> None:
    append(events, line(status="Filled", filled=3), line("u"), line("v"))
    first = read(events)
    other = tmp_path / "new.jsonl"
    append(other, line(status="Canceled"), line("u"), line("w"), line("x"))
    os.replace(other, events)  # a new inode, larger than what was read
    second = read(events, first.ledger)
    assert last(second) == ("CANCELED", True, False) and "v" not in second.ledger.tags


def test_a_file_rewritten_in_place_is_read_again_from_the_top(events: Path) -> None:
    append(events, line(status="Filled", filled=3), line("u"))
    first = read(events)
    with events.open("r+") as handle:  # same inode, same size and more, other content
        handle.write(line(status="Canceled", pad="x" * 10) + line("u") + line("v"))
    second = read(events, first.ledger)
    assert last(second) == ("CANCELED", True, False)


def test_a_line_being_written_is_not_consumed_and_its_tags_wait(events: Path) -> None:
    append(events, line("u"), '{"tag": "t", "status": "Fil')
    first = read(events)
    assert first.partial_tags == {"t"} and not first.partial_untagged and "t" not in first.ledger.tags
    append(events, 'led", "filled": 4}\n')
    second = read(events, first.ledger)
    assert second.partial_tags == frozenset() and last(second) == ("FILLED", False, True)


def test_a_line_being_written_that_names_no_tag_yet_concerns_every_order(events: Path) -> None:
    append(events, line("u"), '{"order_id": 4, "sta')
    assert read(events).partial_untagged


def test_a_whole_object_without_its_newline_is_read_now_and_again_later(events: Path) -> None:
    append(events, line("u"), line(status="Submitted").rstrip("\n"))
    first = read(events)
    assert last(first) == ("SUBMITTED", False, False) and not first.partial_untagged
    append(events, "\n", line(status="Canceled"))
    assert last(read(events, first.ledger)) == ("CANCELED", True, False)


def test_a_bad_complete_line_leaves_the_tags_it_names_unreadable(events: Path) -> None:
    append(events, '{"tag": "t", "status": Filled}\n', line("u"))
    result = read(events)
    assert result.ledger.bad_line_tags == {"t"} and "t" not in result.ledger.tags


def test_a_first_read_past_the_cap_covers_only_orders_created_after_it(events: Path) -> None:
    append(events, *(line(f"o{i}") for i in range(5_000)), line(status="Filled", filled=1))
    result = read(events, max_bytes=CHUNK_BYTES)
    ledger = result.ledger
    assert 0 < ledger.start and ledger.started_at == NOW and "BRIDGE_EVENTS_MAX_READ_BYTES" in ledger.cut
    assert last(result) == ("FILLED", False, True)  # what was read still counts
    raw = events.read_bytes()
    assert raw[ledger.start - 1 : ledger.start] == b"\n"  # from a line start
    assert not ledger.covers(NOW - dt.timedelta(seconds=1)) and ledger.covers(NOW)


def test_a_backlog_past_the_cap_since_the_last_read_starts_over_at_the_end(events: Path) -> None:
    append(events, line(status="Submitted"))
    first = read(events)
    assert first.ledger.covers(NOW - dt.timedelta(days=30))
    append(events, *(line(f"o{i}") for i in range(5_000)))
    later = NOW + dt.timedelta(minutes=5)
    second = read(events, first.ledger, max_bytes=CHUNK_BYTES, now=later)
    assert "t" not in second.ledger.tags and second.ledger.started_at == later
    assert not second.ledger.covers(NOW)


def test_the_store_keeps_the_ledger_for_the_next_process(events: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    append(events, *(line(f"o{i}") for i in range(100)), line(status="Filled", filled=2))
    LedgerStore(state).read(events, now=NOW, max_bytes=CAP)
    append(events, line(status="Canceled"))
    again = LedgerStore(state).read(events, now=NOW, max_bytes=CAP)  # a new process, same host
    assert again.lines_read == 1 and last(again) == ("CANCELED", True, True)


def test_a_damaged_kept_ledger_means_reading_from_the_top(events: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    append(events, line(status="Filled", filled=2))
    LedgerStore(state).read(events, now=NOW, max_bytes=CAP)
    (kept,) = state.iterdir()
    kept.write_text('{"version": 1, "path": ')
    again = LedgerStore(state).read(events, now=NOW, max_bytes=CAP)
    assert again.lines_read == 1 and last(again) == ("FILLED", False, True)


@pytest.mark.parametrize(
    "damage",
    [
        lambda kept: {**kept, "version": 1},  # an older host's format: read again from the top
        lambda kept: {**kept, "tags": {"t": ["FILLED", None, 2, False]}},  # a tag of the wrong shape
        lambda kept: {**kept, "tags": {"t": ["FILLED", None, 2, False, ["FILLED"], 10]}},  # its fill too
        lambda kept: {**kept, "tags": ["t"]},
    ],
)
def test_a_kept_ledger_of_another_shape_means_reading_from_the_top(
    events: Path, tmp_path: Path, damage: Any
) -> None:
    state = tmp_path / "state"
    append(events, line(status="Filled", filled=2), line("other"))
    LedgerStore(state).read(events, now=NOW, max_bytes=CAP)
    (kept,) = state.iterdir()
    kept.write_text(json.dumps(damage(json.loads(kept.read_text()))))
    again = LedgerStore(state).read(events, now=NOW, max_bytes=CAP)
    assert again.lines_read == 2 and last(again) == ("FILLED", False, True)


def test_a_kept_ledger_is_compact_and_builds_only_the_tags_asked_for(events: Path, tmp_path: Path) -> None:
    """The path and kind are the ledger's, not repeated per tag; a new process turns a kept tag
    into its history only when a run asks for it."""
    state = tmp_path / "state"
    append(events, *(line(f"o{i}") for i in range(1000)), line(status="Filled", filled=2))
    LedgerStore(state).read(events, now=NOW, max_bytes=CAP)
    (kept,) = state.iterdir()
    tags_kept = kept.read_text().split('"tags"', 1)[1]
    assert str(events) not in tags_kept and "execution_event" not in tags_kept  # once, not per tag
    again = LedgerStore(state).read(events, now=NOW, max_bytes=CAP)
    built = [tag for tag, value in dict.items(again.ledger.tags) if not isinstance(value, list)]
    assert built == []  # nothing asked for yet
    assert last(again) == ("FILLED", False, True)
    assert again.ledger.tags["t"].last.path == str(events) and again.ledger.tags["t"].fill.filled == 2


def test_an_unreadable_file_is_a_problem_and_keeps_the_ledger(events: Path) -> None:
    events.mkdir()
    result = read(events)
    assert result.problem and "unreadable" in result.problem


# --- property: whatever the interleaving, the splits and the times -----------------------------

TAGS = ["t", "u", "v"]
STATUSES = ["Submitted", "New", "PartiallyFilled", "Filled", "CancelPending", "Canceled", "Invalid", "weird"]
TIMES = ["0001-01-01T00:00:00", "2026-11-24T10:58:00", "2026-11-23T16:00:00Z", "2026-11-24T15:59:00Z", "x"]
LINES = st.fixed_dictionaries(
    {
        "tag": st.sampled_from(TAGS),
        "status": st.sampled_from(STATUSES),
        "filled": st.sampled_from([0, 0, 0, 1, 2.5]),
        "time": st.sampled_from(TIMES),
    }
)


@settings(PROOF, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@seed(SEED)
@given(
    lines=st.lists(LINES, max_size=40),
    cuts=st.lists(st.integers(0, 4000), max_size=6),
    restarts=st.lists(st.booleans(), min_size=7, max_size=7),
)
def test_each_tag_ends_at_its_last_line_in_file_order_with_fills_kept(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[dict[str, Any]],
    cuts: list[int],
    restarts: list[bool],
) -> None:
    folder = tmp_path_factory.mktemp("events")
    events, state = folder / "execution_events.jsonl", folder / "state"
    body = "".join(json.dumps(item) + "\n" for item in lines).encode()
    # The file grows in pieces cut anywhere (mid-line too), read after each; now and then by a
    # new process that finds only what the host kept on disk.
    store = LedgerStore(state)
    written = 0
    for cut, restart in zip([*sorted(cuts), len(body)], restarts, strict=False):
        cut = min(cut, len(body))
        with events.open("ab") as handle:
            handle.write(body[written:cut])
        written = max(written, cut)
        if restart:
            store = LedgerStore(state)
        store.read(events, now=NOW, max_bytes=CAP)
    with events.open("ab") as handle:
        handle.write(body[written:])
    result = store.read(events, now=NOW, max_bytes=CAP)
    expected = {}
    for item in lines:
        filled_before = expected.get(item["tag"], (None, False))[1]
        expected[item["tag"]] = (item["status"].upper(), filled_before or item["filled"] != 0)
    got = {} if result.ledger is None else result.ledger.tags
    assert {tag: (h.last.status, h.fill is not None) for tag, h in got.items()} == expected
