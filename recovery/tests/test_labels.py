"""Plain words for every reason and not-a-candidate code (pure: no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from recovery.sweep.decisions import NotCandidate, Reason
from recovery.sweep.labels import (
    CANCEL_ONLY,
    LEFT_ALONE,
    REPLACE,
    age_text,
    bridge_file_text,
    moment_text,
    not_candidate_label,
    reason_label,
    settings_text,
    would_be_action,
)

SETTINGS = {"max_auto_retries": 1, "max_price_deviation_pct": 1.5}


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_has_a_label_that_says_what_happens_first(reason: Reason) -> None:
    label = reason_label({"reason": str(reason)}, settings=SETTINGS)
    assert label.split(":")[0] in (REPLACE, CANCEL_ONLY, LEFT_ALONE, "Failed, stays NEW")
    why = label.split(": ", 1)[1]
    assert why and why != str(reason) and not why.startswith(str(reason))  # words, not the code


@pytest.mark.parametrize("code", list(NotCandidate))
def test_every_not_candidate_code_has_a_label(code: NotCandidate) -> None:
    label = not_candidate_label(str(code))
    why = label.removeprefix("Not a candidate: ")
    assert why != label and why != str(code) and "_" not in why


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ({"reason": "retries_exhausted", "attempt": 1}, "Cancel only: retries used up (1 of 1)"),
        (
            {
                "reason": "retries_exhausted",
                "attempt": -1,
                "detail": "params.auto_recovery.attempts is unreadable",
            },
            "Cancel only: retries used up (params.auto_recovery.attempts is unreadable)",
        ),
        (
            {"reason": "price_deviation", "quote": 103.2, "deviation_pct": 3.2},
            "Cancel only: quote 103.2 is 3.2% from the limit (max 1.5%)",
        ),
        (
            {"reason": "replaced", "quote": 100.5, "deviation_pct": 0.5},
            "Cancel and re-place: quote 100.5, 0.5% from the limit",
        ),
        ({"reason": "replaced"}, "Cancel and re-place: nothing stops it"),
        (
            {"reason": "quote_unavailable", "detail": "no fresh quote for 'AAPL'"},
            "Cancel only: no fresh quote (no fresh quote for 'AAPL')",
        ),
        (
            {"reason": "seen_by_broker", "detail": "Filled event in execution_events.jsonl"},
            "Left alone: the broker's files show it (Filled event in execution_events.jsonl)",
        ),
        (
            {"reason": "broker_evidence_unreadable", "detail": "execution_events.jsonl: line 3 is not JSON"},
            "Left alone: a broker file could not be read (execution_events.jsonl: line 3 is not JSON)",
        ),
        (
            {"reason": "broker_evidence_unavailable"},
            "Left alone: the broker's files are not reachable from this host",
        ),
        (
            {"reason": "write_failed", "detail": "IntegrityError"},
            "Failed, stays NEW: the write failed (IntegrityError)",
        ),
        (
            {"reason": "circuit_open", "held_by_breaker": "replaced"},
            "Left alone: circuit breaker open; without it: Cancel and re-place: nothing stops it",
        ),
        ({"reason": "something_new"}, "something_new"),  # a newer sweep's code: shown as itself
    ],
)
def test_labels_carry_the_inputs_behind_them(outcome: dict, expected: str) -> None:
    assert reason_label(outcome, settings=SETTINGS) == expected


def test_not_new_names_the_status() -> None:
    assert not_candidate_label("not_new", status="FILLED") == "Not a candidate: status is FILLED, not NEW"
    assert not_candidate_label("mystery") == "Not a candidate: mystery"


@pytest.mark.parametrize(
    ("outcome", "action"),
    [
        ({"reason": "replaced"}, "replace"),
        ({"reason": "outside_rth"}, "cancel"),
        ({"reason": "guard_halted"}, "skip"),
        ({"reason": "circuit_open", "held_by_breaker": "replaced"}, "replace"),
        ({"reason": "circuit_open", "held_by_breaker": "invalid_order"}, "cancel"),
        ({"reason": "unknown"}, "skip"),
    ],
)
def test_would_be_action_sees_through_the_breaker(outcome: dict, action: str) -> None:
    assert would_be_action(outcome) == action


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (254, "4 min"),
        (3600, "1 h 00 min"),
        (3725, "1 h 02 min"),
        (254379, "2 d 22 h"),
        (None, "-"),
        (-5, "-"),
        (float("nan"), "-"),
        (True, "-"),
    ],
)
def test_age_text(seconds: object, text: str) -> None:
    assert age_text(seconds) == text


def test_settings_render_as_text_never_a_python_repr() -> None:
    shown = settings_text(
        {"enabled": True, "blackout_windows": [{"start": "23:45", "end": "00:15"}], "max_auto_retries": 1}
    )
    assert shown == {"enabled": "yes", "blackout_windows": "23:45–00:15 (New York)", "max_auto_retries": "1"}
    assert settings_text({"blackout_windows": []})["blackout_windows"] == "none"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (dt.datetime(2026, 12, 7, 14, 5, 30, tzinfo=dt.UTC), "2026-12-07 14:05:30 UTC"),
        (
            dt.datetime(2026, 12, 7, 9, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "2026-12-07 14:05:30 UTC",
        ),
        (dt.datetime(2026, 12, 7, 14, 5, 30), "2026-12-07 14:05:30 UTC"),  # the backend's naive UTC
        ("2026-12-07T14:05:30.123Z", "2026-12-07 14:05:30 UTC"),
        ("2026-12-07T15:05:30+01:00", "2026-12-07 14:05:30 UTC"),
        ("not a time", "not a time"),
        (None, "-"),
    ],
)
def test_one_time_format_for_datetimes_and_iso_strings(value: object, shown: str) -> None:
    assert moment_text(value) == shown


@pytest.mark.parametrize(
    ("gate", "shown"),
    [
        ({"available": True, "age_seconds": 12.4, "items": 3}, "12 s old, 3 symbols"),
        ({"available": True, "age_seconds": 0, "items": 1}, "0 s old, 1 symbol"),
        (
            {"available": False, "problem": "too_old", "age_seconds": 93784.0},
            "no data: older than its age limit, 1 d 2 h old (too_old)",
        ),
        (
            {"available": False, "problem": "missing", "age_seconds": None},
            "no data: the file is missing (missing)",
        ),
        (
            {"available": False, "problem": "marked_stale"},
            "no data: the bridge marked it stale (marked_stale)",
        ),
        ({"available": False, "problem": "from_the_future"}, "no data: from_the_future (from_the_future)"),
    ],
)
def test_a_bridge_file_in_words_with_its_code_second(gate: dict, shown: str) -> None:
    assert bridge_file_text(gate, unit="symbol") == shown


def test_every_bridge_problem_has_words() -> None:
    from recovery.gates import bridge
    from recovery.sweep.labels import BRIDGE_PROBLEM_WHY

    codes = {value for name, value in vars(bridge).items() if name.startswith("PROBLEM_")}
    assert codes == set(BRIDGE_PROBLEM_WHY)
