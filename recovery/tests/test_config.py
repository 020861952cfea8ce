"""auto_recovery settings: defaults, strict types, ranges, fallbacks and their warnings."""

from __future__ import annotations

import json
import math
from datetime import time

import pytest

from recovery.sweep.config import (
    UNFILLED_DEFAULTS,
    WHOLE_COLUMN,
    WHY_BOOL,
    WHY_FLOAT,
    WHY_INT,
    WHY_NO_ROW,
    WHY_NOT_OBJECT,
    WHY_NULL,
    WHY_RANGE,
    AutoRecoveryConfig,
    BlackoutWindow,
    SettingsWarning,
    config_parse,
    resume_parse,
    unfilled_parse,
)

DEFAULTS = {
    "enabled": True,
    "new_timeout_seconds": 45,
    "max_auto_retries": 1,
    "max_price_deviation_pct": 1.5,
    "allow_replace_outside_rth": False,
    "max_replacements_per_sweep": 20,
    "blackout_windows": [],
    "replace_same_trading_day_only": True,
    "max_replacements_per_hour": 60,
    "replace_run_orders": False,
}
BOOL_KEYS = ("enabled", "allow_replace_outside_rth", "replace_same_trading_day_only", "replace_run_orders")
INT_KEYS = (
    "new_timeout_seconds",
    "max_auto_retries",
    "max_replacements_per_sweep",
    "max_replacements_per_hour",
)
INT_RANGES = [
    ("new_timeout_seconds", 1, 86400),
    ("max_auto_retries", 0, 10),
    ("max_replacements_per_sweep", 1, 1000),
    ("max_replacements_per_hour", 1, 10000),
]
FLOAT_KEY = "max_price_deviation_pct"


def window(start: str, end: str) -> dict[str, str]:
    return {"start": start, "end": end}


def hm(text: str) -> time:
    return time.fromisoformat(text)


def only_warning(raw: object, **kwargs: bool) -> SettingsWarning:
    config, warnings = config_parse(raw, **kwargs)
    assert config == AutoRecoveryConfig()
    assert len(warnings) == 1
    return warnings[0]


def assert_falls_back(key: str, value: object, reason: str) -> SettingsWarning:
    """`key: value` alone: the setting keeps its default and exactly one warning says why."""
    config, warnings = config_parse({key: value})
    assert config.as_dict()[key] == DEFAULTS[key]
    assert config == AutoRecoveryConfig()
    assert [(w.key, w.reason) for w in warnings] == [(key, reason)]
    return warnings[0]


# --- missing keys and defaults ---------------------------------------------------------------


def test_empty_object_gives_every_default_silently() -> None:
    config, warnings = config_parse({})
    assert warnings == []
    assert config.as_dict() == DEFAULTS
    assert config.blackout_windows == ()


def test_a_missing_key_takes_its_default_silently_while_present_keys_apply() -> None:
    config, warnings = config_parse({"new_timeout_seconds": 90})
    assert warnings == []
    assert config.as_dict() == {**DEFAULTS, "new_timeout_seconds": 90}


def test_every_key_valid_and_non_default_applies() -> None:
    raw = {
        "enabled": False,
        "new_timeout_seconds": 120,
        "max_auto_retries": 3,
        "max_price_deviation_pct": 2.25,
        "allow_replace_outside_rth": True,
        "max_replacements_per_sweep": 50,
        "blackout_windows": [window("23:45", "00:15")],
        "replace_same_trading_day_only": False,
        "max_replacements_per_hour": 500,
        "replace_run_orders": True,
    }
    config, warnings = config_parse(raw)
    assert warnings == []
    assert config.as_dict() == raw
    assert config.blackout_windows == (BlackoutWindow(start=hm("23:45"), end=hm("00:15")),)


@pytest.mark.parametrize(
    ("raw", "remaining", "max_attempts"),
    [
        ({}, True, 1),
        ({"auto_resume_partial_remaining": False, "auto_resume_partial_max_attempts": 3}, False, 3),
        ({"auto_resume_partial_remaining": "no", "auto_resume_partial_max_attempts": 0}, False, 1),
        ({"auto_resume_partial_remaining": "maybe", "auto_resume_partial_max_attempts": "x"}, True, 1),
    ],
)
def test_the_backends_resume_keys_are_read_as_its_executor_reads_them(
    raw: dict, remaining: bool, max_attempts: int
) -> None:
    """Rule 7c asks whether a run's partial resume is off: the backend's reading, not the form's."""
    config, warnings = config_parse(raw)
    assert (config.auto_resume_partial_remaining, config.auto_resume_partial_max_attempts) == (
        remaining,
        max_attempts,
    )
    assert warnings == []  # the backend's keys: never reported as the sweep's bad settings
    assert "auto_resume_partial_remaining" not in config.as_dict()


def test_as_dict_round_trips_through_the_parser() -> None:
    config, _ = config_parse(
        {"enabled": False, "max_price_deviation_pct": 0, "blackout_windows": [window("09:25", "09:35")]}
    )
    text = json.dumps(config.as_dict(), allow_nan=False)
    assert config_parse(json.loads(text)) == (config, [])


def test_unknown_keys_are_ignored_without_warning() -> None:
    config, warnings = config_parse(
        {"unfilled_timeout_seconds": 600, "somebody_elses": {"nested": [1, 2]}, "new_timeout_seconds": 30}
    )
    assert warnings == []
    assert config.as_dict() == {**DEFAULTS, "new_timeout_seconds": 30}


# --- bool keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", BOOL_KEYS)
def test_bool_key_takes_true_and_false(key: str) -> None:
    for value in (True, False):
        config, warnings = config_parse({key: value})
        assert warnings == []
        assert getattr(config, key) is value


@pytest.mark.parametrize("key", BOOL_KEYS)
@pytest.mark.parametrize("value", [1, 0, "true", "false", "", None, [], {}, 1.0])
def test_bool_key_rejects_anything_but_a_json_bool(key: str, value: object) -> None:
    warning = assert_falls_back(key, value, WHY_BOOL)
    assert warning.value == value


# --- int keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", [True, False, 45.5, 45.0, "45", None, [45], {"value": 45}])
def test_int_key_rejects_anything_but_a_json_integer(key: str, value: object) -> None:
    warning = assert_falls_back(key, value, WHY_INT)
    assert warning.value == value
    assert type(warning.value) is type(value)


@pytest.mark.parametrize(("key", "low", "high"), INT_RANGES)
def test_int_range_includes_both_ends(key: str, low: int, high: int) -> None:
    for value in (low, high):
        config, warnings = config_parse({key: value})
        assert warnings == []
        assert getattr(config, key) == value
        assert type(getattr(config, key)) is int


@pytest.mark.parametrize(("key", "low", "high"), INT_RANGES)
def test_int_range_rejects_one_past_either_end(key: str, low: int, high: int) -> None:
    for value in (low - 1, high + 1):
        warning = assert_falls_back(key, value, WHY_RANGE.format(low=low, high=high))
        assert warning.value == value


def test_zero_retries_is_a_valid_setting_not_a_fallback() -> None:
    config, warnings = config_parse({"max_auto_retries": 0})
    assert warnings == []
    assert config.max_auto_retries == 0


# --- the float key ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False, "1.5", None, [1.5], math.nan, math.inf, -math.inf])
def test_float_key_rejects_bools_text_and_non_finite_numbers(value: object) -> None:
    assert_falls_back(FLOAT_KEY, value, WHY_FLOAT)


def test_float_key_accepts_a_json_integer_as_a_float() -> None:
    config, warnings = config_parse({FLOAT_KEY: 2})
    assert warnings == []
    assert config.max_price_deviation_pct == 2.0
    assert type(config.max_price_deviation_pct) is float


@pytest.mark.parametrize("value", [0, 0.0, 100, 100.0, 0.3, 99.99])
def test_float_range_includes_both_ends(value: float) -> None:
    config, warnings = config_parse({FLOAT_KEY: value})
    assert warnings == []
    assert config.max_price_deviation_pct == value


@pytest.mark.parametrize("value", [-0.0001, -1, 100.0001, 101])
def test_float_range_rejects_just_outside_either_end(value: float) -> None:
    warning = assert_falls_back(FLOAT_KEY, value, WHY_RANGE.format(low=0, high=100))
    assert warning.value == value


# --- invalid keys beside valid ones ----------------------------------------------------------


def test_each_invalid_key_is_reported_and_the_valid_ones_beside_it_still_apply() -> None:
    config, warnings = config_parse(
        {
            "enabled": False,
            "new_timeout_seconds": "90",
            "max_auto_retries": 3,
            "max_price_deviation_pct": 200,
            "allow_replace_outside_rth": 1,
            "max_replacements_per_sweep": 5,
            "blackout_windows": [window("24:00", "01:00")],
            "unfilled_timeout_seconds": "whatever",
        }
    )
    assert config.as_dict() == {
        **DEFAULTS,
        "enabled": False,
        "max_auto_retries": 3,
        "max_replacements_per_sweep": 5,
    }
    assert [(w.key, w.value) for w in warnings] == [
        ("new_timeout_seconds", "90"),
        ("max_price_deviation_pct", 200),
        ("allow_replace_outside_rth", 1),
        ("blackout_windows", [window("24:00", "01:00")]),
    ]
    reasons = {w.key: w.reason for w in warnings}
    assert reasons["new_timeout_seconds"] == WHY_INT
    assert reasons["max_price_deviation_pct"] == WHY_RANGE.format(low=0, high=100)
    assert reasons["allow_replace_outside_rth"] == WHY_BOOL
    assert "'24:00': hour 24 is out of range (00 to 23)" in reasons["blackout_windows"]


# --- a column that holds no JSON object ------------------------------------------------------


def test_null_column_gives_all_defaults_with_one_warning() -> None:
    warning = only_warning(None)
    assert (warning.key, warning.value, warning.reason) == (WHOLE_COLUMN, None, WHY_NULL)


@pytest.mark.parametrize(
    "raw",
    [
        '{"enabled": false, "new_timeout_seconds": 9',  # invalid JSON: Django hands back the text
        '{"enabled": false}',  # a JSON string that merely looks like an object
        "",
        [],
        [{"enabled": False}],
        5,
        1.5,
        True,
        False,
    ],
)
def test_a_column_that_is_not_an_object_gives_all_defaults_with_one_warning(raw: object) -> None:
    warning = only_warning(raw)
    assert (warning.key, warning.value, warning.reason) == (WHOLE_COLUMN, raw, WHY_NOT_OBJECT)


def test_no_settings_row_gives_all_defaults_with_one_warning() -> None:
    warning = only_warning(None, row_exists=False)
    assert (warning.key, warning.value, warning.reason) == (WHOLE_COLUMN, None, WHY_NO_ROW)
    # Whatever raw says, no row is no row.
    assert only_warning({"enabled": False}, row_exists=False).reason == WHY_NO_ROW


def test_a_long_text_column_is_reported_shortened() -> None:
    warning = only_warning("x" * 5000)
    assert isinstance(warning.value, str)
    assert len(warning.value) < 300
    assert warning.reason == WHY_NOT_OBJECT


# --- values JSON cannot hold, and huge numbers -----------------------------------------------


@pytest.mark.parametrize("key", [*INT_KEYS, FLOAT_KEY])
@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_a_huge_integer_falls_back_without_raising(key: str, value: int) -> None:
    config, warnings = config_parse({key: value})
    assert config == AutoRecoveryConfig()
    assert [w.key for w in warnings] == [key]
    assert warnings[0].reason.startswith("must be between")
    json.dumps(warnings[0].as_dict(), allow_nan=False)
    assert str(warnings[0]).startswith(f"{key}=")


def test_every_warning_value_is_json_serialisable_even_nan_and_infinity() -> None:
    _, warnings = config_parse(
        {
            "enabled": math.nan,
            "new_timeout_seconds": math.inf,
            "max_auto_retries": 10**400,
            "max_price_deviation_pct": math.nan,
            "allow_replace_outside_rth": [math.nan],
            "max_replacements_per_sweep": -math.inf,
            "blackout_windows": [{"start": math.nan, "end": "01:00"}],
        }
    )
    assert len(warnings) == 7
    text = json.dumps([w.as_dict() for w in warnings], allow_nan=False)
    assert json.loads(text)[3] == {"key": FLOAT_KEY, "value": "nan", "reason": WHY_FLOAT}
    for warning in warnings:
        assert str(warning).startswith(f"{warning.key}=")


def test_a_json_safe_bad_value_is_reported_as_itself() -> None:
    _, warnings = config_parse({"new_timeout_seconds": "45"})
    assert warnings == [SettingsWarning("new_timeout_seconds", "45", WHY_INT)]
    assert str(warnings[0]) == f'new_timeout_seconds="45": {WHY_INT}'


# --- blackout windows ------------------------------------------------------------------------


def test_blackout_windows_valid_list_parses_in_order() -> None:
    config, warnings = config_parse(
        {"blackout_windows": [window("23:45", "00:15"), window("09:25", "09:35"), window("00:00", "23:59")]}
    )
    assert warnings == []
    assert config.blackout_windows == (
        BlackoutWindow(start=hm("23:45"), end=hm("00:15")),
        BlackoutWindow(start=hm("09:25"), end=hm("09:35")),
        BlackoutWindow(start=hm("00:00"), end=hm("23:59")),
    )


def test_blackout_windows_empty_list_is_valid() -> None:
    assert config_parse({"blackout_windows": []}) == (AutoRecoveryConfig(), [])


def test_window_within_a_day_includes_start_excludes_end() -> None:
    gateway_restart = BlackoutWindow(start=hm("09:25"), end=hm("09:35"))
    assert not gateway_restart.contains(time(9, 24, 59, 999999))
    assert gateway_restart.contains(hm("09:25"))
    assert gateway_restart.contains(time(9, 34, 59, 999999))
    assert not gateway_restart.contains(hm("09:35"))
    assert not gateway_restart.contains(hm("21:30"))


def test_window_that_wraps_midnight_covers_both_sides_of_it() -> None:
    overnight = BlackoutWindow(start=hm("23:00"), end=hm("01:00"))
    assert overnight.contains(hm("23:30"))
    assert overnight.contains(hm("00:30"))
    assert overnight.contains(hm("00:00"))
    assert not overnight.contains(hm("12:00"))


def test_window_that_wraps_midnight_includes_start_excludes_end() -> None:
    overnight = BlackoutWindow(start=hm("23:00"), end=hm("01:00"))
    assert not overnight.contains(time(22, 59, 59, 999999))
    assert overnight.contains(hm("23:00"))
    assert overnight.contains(time(0, 59, 59, 999999))
    assert not overnight.contains(hm("01:00"))


def test_window_as_dict_writes_hh_mm() -> None:
    assert BlackoutWindow(start=hm("07:05"), end=hm("00:00")).as_dict() == {"start": "07:05", "end": "00:00"}


@pytest.mark.parametrize(
    ("windows", "problem"),
    [
        ([window("09:30", "09:30")], "start equals end"),
        ([window("24:00", "01:00")], "start '24:00': hour 24 is out of range (00 to 23)"),
        ([window("23:00", "24:00")], "end '24:00': hour 24 is out of range (00 to 23)"),
        ([window("25:99", "26:00")], "start '25:99': hour 25 is out of range (00 to 23)"),
        ([window("9:30", "10:00")], "start '9:30' is not HH:MM"),
        ([window("09:60", "10:00")], "start '09:60': minute 60 is out of range (00 to 59)"),
        ([window("٩٩:30", "10:00")], "start '٩٩:30' is not HH:MM"),
        ([window("0930", "1000")], "start '0930' is not HH:MM"),
        ([window("09:30:00", "10:00")], "start '09:30:00' is not HH:MM"),
        ([window(" 09:30", "10:00")], "start ' 09:30' is not HH:MM"),
        ([window("09:30\n", "10:00")], "start '09:30\\n' is not HH:MM"),
        ([window("09:30", "10:3٠")], "end '10:3٠' is not HH:MM"),  # an Arabic-Indic zero
        ([{"start": 930, "end": "10:00"}], "start 930 is not HH:MM"),
        ([{"start": "09:30", "end": None}], "end None is not HH:MM"),
        ([{"start": "09:30"}], "end None is not HH:MM"),
        ([{}], "start None is not HH:MM"),
        (["09:30-10:00"], "an item is not an object"),
        ([None], "an item is not an object"),
        ([window("09:25", "09:35"), window("12:00", "12:00")], "start equals end"),
        ({"start": "09:30", "end": "10:00"}, "not a list"),
        ("09:30-10:00", "not a list"),
        (None, "not a list"),
    ],
)
def test_invalid_blackout_windows_fall_back_to_none_at_all(windows: object, problem: str) -> None:
    config, warnings = config_parse({"blackout_windows": windows, "new_timeout_seconds": 60})
    assert config.blackout_windows == ()
    assert config.new_timeout_seconds == 60
    assert len(warnings) == 1
    assert warnings[0].key == "blackout_windows"
    assert warnings[0].value == windows
    assert warnings[0].reason.startswith('must be a list of {"start": "HH:MM", "end": "HH:MM"}')
    assert warnings[0].reason.endswith(f"({problem})")


# --- the backend's unfilled_* keys: typed for the settings page, never read by the sweep ---


def test_unfilled_keys_take_the_backends_defaults() -> None:
    assert UNFILLED_DEFAULTS == {
        "unfilled_timeout_seconds": 600,
        "unfilled_reprice_interval_seconds": 0,
        "unfilled_max_reprices": 0,
        "unfilled_max_price_deviation_pct": 1.5,
    }
    assert unfilled_parse(None) == UNFILLED_DEFAULTS
    assert unfilled_parse("not an object") == UNFILLED_DEFAULTS


@pytest.mark.parametrize(
    ("raw", "key", "expected"),
    [
        ({"unfilled_timeout_seconds": 0}, "unfilled_timeout_seconds", 0),  # 0 = off is valid
        ({"unfilled_timeout_seconds": 45.5}, "unfilled_timeout_seconds", 600),  # not an int: default
        ({"unfilled_max_reprices": True}, "unfilled_max_reprices", 0),  # a bool is no int
        ({"unfilled_max_reprices": 101}, "unfilled_max_reprices", 0),  # out of range
        ({"unfilled_max_price_deviation_pct": 2}, "unfilled_max_price_deviation_pct", 2.0),
        ({"unfilled_max_price_deviation_pct": float("nan")}, "unfilled_max_price_deviation_pct", 1.5),
    ],
)
def test_unfilled_keys_are_typed_strictly(raw: dict, key: str, expected: object) -> None:
    assert unfilled_parse(raw)[key] == expected


def test_the_sweep_ignores_unfilled_keys() -> None:
    config, warnings = config_parse({"unfilled_timeout_seconds": "soon", "new_timeout_seconds": 60})
    assert warnings == [] and config.new_timeout_seconds == 60
    assert "unfilled_timeout_seconds" not in config.as_dict()


ON, OFF = "auto_resume_partial_remaining", "auto_resume_partial_max_attempts"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {ON: True, OFF: 1}),
        ({ON: False}, {ON: False, OFF: 1}),
        ({ON: "no", OFF: "3"}, {ON: False, OFF: 3}),  # the backend's loose reading
        ({ON: 0, OFF: 2.7}, {ON: False, OFF: 2}),
        ({ON: "maybe", OFF: "x"}, {ON: True, OFF: 1}),  # unreadable: its default
        ({OFF: 0}, {ON: True, OFF: 1}),  # the backend reads 0 as its default 1
        ({OFF: -5}, {ON: True, OFF: 0}),
    ],
)
def test_resume_keys_read_as_the_backends_trade_executor_reads_them(raw: object, expected: dict) -> None:
    assert resume_parse(raw) == expected


def test_the_sweep_ignores_resume_keys() -> None:
    config, warnings = config_parse({"auto_resume_partial_remaining": "maybe", "new_timeout_seconds": 60})
    assert warnings == [] and config.new_timeout_seconds == 60
