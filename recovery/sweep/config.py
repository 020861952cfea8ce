"""auto_recovery settings: defaults, strict parsing and validation of the JSON (pure).

A missing key takes its default silently. A present but invalid key falls back to its
default and is reported; a column that holds no JSON object at all means all defaults,
reported once. Nothing here raises on bad input: bad settings must never stop a sweep.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import time
from typing import Any

WHOLE_COLUMN = "auto_recovery"
_HHMM = re.compile(r"([0-9]{2}):([0-9]{2})")  # fullmatch: "$" lets "09:30\n" through
_MAX_VALUE_TEXT = 200

WHY_NOT_OBJECT = "not a JSON object: all defaults apply"
WHY_NO_ROW = "no trade_settings row: all defaults apply"
WHY_NULL = "column is NULL: all defaults apply"
WHY_UNREADABLE = "column could not be decoded: all defaults apply"
WHY_BOOL = "must be true or false"
WHY_INT = "must be a whole JSON number (not a bool, not a fraction)"
WHY_FLOAT = "must be a finite JSON number (not a bool, not NaN)"
WHY_RANGE = "must be between {low} and {high}"
WHY_WINDOWS = 'must be a list of {{"start": "HH:MM", "end": "HH:MM"}} with start != end ({problem})'


@dataclass(frozen=True)
class BlackoutWindow:
    """A daily window in America/New_York wall-clock time; end < start wraps midnight."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}


@dataclass(frozen=True)
class AutoRecoveryConfig:
    enabled: bool = True
    new_timeout_seconds: int = 45
    max_auto_retries: int = 1
    max_price_deviation_pct: float = 1.5
    allow_replace_outside_rth: bool = False
    max_replacements_per_sweep: int = 20
    blackout_windows: tuple[BlackoutWindow, ...] = field(default_factory=tuple)
    # Re-place only an order created on the sweep's New York date: last week's market order
    # is not what the strategy wants now (rule 7b, stale_intent).
    replace_same_trading_day_only: bool = True
    # Rolling breaker: replacements written by every sweep (cron, admin, API, every host) in
    # the last 60 minutes, counted from the trail; a sweep that would go past it replaces nothing.
    max_replacements_per_hour: int = 60
    # Re-place an order of a finished run (as a direct order); off: such an order is only
    # cancelled (rule 7c, run_order_not_replaced), the backend's partial resume sends the rest.
    replace_run_orders: bool = False
    # The backend's partial-run resume as its trade executor reads the same JSON (resume_parse),
    # not a setting of the sweep's own: rule 7c asks whether a run's resume is off or used up.
    auto_resume_partial_remaining: bool = field(default=True, metadata={"backend": True})
    auto_resume_partial_max_attempts: int = field(default=1, metadata={"backend": True})

    def as_dict(self) -> dict[str, Any]:
        """The sweep's own settings (the backend's keys are shown where they are edited)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.metadata.get("backend")}
        data["blackout_windows"] = [w.as_dict() for w in self.blackout_windows]
        return data


@dataclass(frozen=True)
class SettingsWarning:
    key: str
    value: Any  # JSON-safe: the bad value itself, or its repr when JSON cannot hold it
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.key}={json.dumps(self.value)}: {self.reason}"


def _json_safe(value: Any) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        try:
            return repr(value)[:_MAX_VALUE_TEXT]
        except ValueError:  # an int past Python's 4,300-digit str() limit
            return f"<{type(value).__name__} too large to show>"
    return value if len(text) <= _MAX_VALUE_TEXT else text[:_MAX_VALUE_TEXT] + "…"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_bool(value: Any) -> tuple[Any, str | None]:
    return (value, None) if isinstance(value, bool) else (None, WHY_BOOL)


def _int_in(low: int, high: int) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        if type(value) is not int:
            return None, WHY_INT
        if not low <= value <= high:
            return None, WHY_RANGE.format(low=low, high=high)
        return value, None

    return check


def _float_in(low: float, high: float) -> Callable[[Any], tuple[Any, str | None]]:
    def check(value: Any) -> tuple[Any, str | None]:
        if not _is_number(value):
            return None, WHY_FLOAT
        # Compare before converting: int(10**400) is a valid JSON number but no float.
        if isinstance(value, float) and not math.isfinite(value):
            return None, WHY_FLOAT
        if not low <= value <= high:
            return None, WHY_RANGE.format(low=low, high=high)
        return float(value), None

    return check


def blackout_window_parse(item: Any) -> BlackoutWindow | str:
    """One {"start": "HH:MM", "end": "HH:MM"} as a window, or why it is not one."""
    if not isinstance(item, Mapping):
        return "an item is not an object"
    parts = []
    for name in ("start", "end"):
        text = item.get(name)
        match = _HHMM.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            return f"{name} {text!r} is not HH:MM"
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour > 23:
            return f"{name} {text!r}: hour {hour} is out of range (00 to 23)"
        if minute > 59:
            return f"{name} {text!r}: minute {minute} is out of range (00 to 59)"
        parts.append(time(hour, minute))
    if parts[0] == parts[1]:
        return "start equals end"
    return BlackoutWindow(start=parts[0], end=parts[1])


def _check_windows(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list):
        return None, WHY_WINDOWS.format(problem="not a list")
    windows = []
    for item in value:
        window = blackout_window_parse(item)
        if isinstance(window, str):
            return None, WHY_WINDOWS.format(problem=window)
        windows.append(window)
    return tuple(windows), None


# The numeric ranges of docs/design.md's settings table; the admin form's min/max come from here.
RANGES: dict[str, tuple[int, int]] = {
    "new_timeout_seconds": (1, 86400),
    "max_auto_retries": (0, 10),
    "max_price_deviation_pct": (0, 100),
    "max_replacements_per_sweep": (1, 1000),
    "max_replacements_per_hour": (1, 10000),
}
VALIDATORS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "enabled": _check_bool,
    "new_timeout_seconds": _int_in(*RANGES["new_timeout_seconds"]),
    "max_auto_retries": _int_in(*RANGES["max_auto_retries"]),
    "max_price_deviation_pct": _float_in(*RANGES["max_price_deviation_pct"]),
    "allow_replace_outside_rth": _check_bool,
    "max_replacements_per_sweep": _int_in(*RANGES["max_replacements_per_sweep"]),
    "blackout_windows": _check_windows,
    "replace_same_trading_day_only": _check_bool,
    "max_replacements_per_hour": _int_in(*RANGES["max_replacements_per_hour"]),
    "replace_run_orders": _check_bool,
}
KNOWN_KEYS = frozenset(f.name for f in fields(AutoRecoveryConfig) if not f.metadata.get("backend"))
assert KNOWN_KEYS == frozenset(VALIDATORS), "every setting needs a validator"

# The backend's own keys in the same JSON, read by its live execution algorithm for broker
# orders that stay unfilled. The sweep never reads them; the settings page edits them
# typed, with the backend's defaults, so the whole auto_recovery object is editable there.
UNFILLED_DEFAULTS: dict[str, Any] = {
    "unfilled_timeout_seconds": 600,  # 0 = off
    "unfilled_reprice_interval_seconds": 0,  # 0 = never re-price
    "unfilled_max_reprices": 0,
    "unfilled_max_price_deviation_pct": 1.5,
}
UNFILLED_RANGES: dict[str, tuple[int, int]] = {
    "unfilled_timeout_seconds": (0, 86400),
    "unfilled_reprice_interval_seconds": (0, 86400),
    "unfilled_max_reprices": (0, 100),
    "unfilled_max_price_deviation_pct": (0, 100),
}
UNFILLED_VALIDATORS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "unfilled_timeout_seconds": _int_in(*UNFILLED_RANGES["unfilled_timeout_seconds"]),
    "unfilled_reprice_interval_seconds": _int_in(*UNFILLED_RANGES["unfilled_reprice_interval_seconds"]),
    "unfilled_max_reprices": _int_in(*UNFILLED_RANGES["unfilled_max_reprices"]),
    "unfilled_max_price_deviation_pct": _float_in(*UNFILLED_RANGES["unfilled_max_price_deviation_pct"]),
}
# The backend's partial-run auto-resume, read by its trade executor from the same JSON: a
# run that ends partly filled starts a child run for what is left (on by default, one
# child). An order this sweep cancels in such a run is part of what is left, one reason a
# run order belongs to its run until the run has ended (rule 3b). The backend reads a max
# of 0 as its default 1, so the page offers 1..100 and the switch to turn it off.
RESUME_DEFAULTS: dict[str, Any] = {
    "auto_resume_partial_remaining": True,
    "auto_resume_partial_max_attempts": 1,
}
RESUME_RANGES: dict[str, tuple[int, int]] = {"auto_resume_partial_max_attempts": (1, 100)}
RESUME_VALIDATORS: dict[str, Callable[[Any], tuple[Any, str | None]]] = {
    "auto_resume_partial_remaining": _check_bool,
    "auto_resume_partial_max_attempts": _int_in(*RESUME_RANGES["auto_resume_partial_max_attempts"]),
}
# Every key the settings page edits as a typed field: the sweep's, then the backend's.
BACKEND_DEFAULTS = {**UNFILLED_DEFAULTS, **RESUME_DEFAULTS}
BACKEND_VALIDATORS = {**UNFILLED_VALIDATORS, **RESUME_VALIDATORS}
EDITABLE_VALIDATORS = {**VALIDATORS, **BACKEND_VALIDATORS}
EDITABLE_KEYS = frozenset(EDITABLE_VALIDATORS)
EDITABLE_RANGES = {**RANGES, **UNFILLED_RANGES, **RESUME_RANGES}
assert set(BACKEND_DEFAULTS) == set(BACKEND_VALIDATORS), "every backend key needs a default"


def _backend_values(
    raw: Any, validators: Mapping[str, Callable[[Any], tuple[Any, str | None]]]
) -> dict[str, Any]:
    values = {key: BACKEND_DEFAULTS[key] for key in validators}
    if isinstance(raw, Mapping):
        for key, validate in validators.items():
            if key in raw:
                value, why = validate(raw[key])
                if why is None:
                    values[key] = value
    return values


def unfilled_parse(raw: Any) -> dict[str, Any]:
    """The backend's unfilled_* values as it would use them: defaults for missing or invalid keys."""
    return _backend_values(raw, UNFILLED_VALIDATORS)


LOOSE_TRUE, LOOSE_FALSE = (
    frozenset({"1", "true", "yes", "y", "on"}),
    frozenset({"0", "false", "no", "n", "off"}),
)


def resume_parse(raw: Any) -> dict[str, Any]:
    """The backend's auto_resume_partial_* values as its trade executor reads them.

    Looser than the page's own checks (which write a bool and 1..100): a stored "no" or 0
    switches resuming off there, a stored "3" is 3, anything unreadable is its default,
    and a max that is 0 or missing is 1. The page shows what the backend will do.
    """
    values = dict(RESUME_DEFAULTS)
    if not isinstance(raw, Mapping):
        return values
    flag = raw.get("auto_resume_partial_remaining")
    if isinstance(flag, bool):
        values["auto_resume_partial_remaining"] = flag
    elif isinstance(flag, int | float):
        values["auto_resume_partial_remaining"] = bool(flag)
    elif isinstance(flag, str) and flag.strip().lower() in LOOSE_TRUE | LOOSE_FALSE:
        values["auto_resume_partial_remaining"] = flag.strip().lower() in LOOSE_TRUE
    try:
        attempts = int(raw.get("auto_resume_partial_max_attempts") or 1)
    except (TypeError, ValueError, OverflowError):
        attempts = 1
    values["auto_resume_partial_max_attempts"] = max(0, attempts)
    return values


def config_parse(raw: Any, *, row_exists: bool = True) -> tuple[AutoRecoveryConfig, list[SettingsWarning]]:
    """Settings in force for `raw` (the column's value as Django hands it back)."""
    if not row_exists:
        return AutoRecoveryConfig(), [SettingsWarning(WHOLE_COLUMN, None, WHY_NO_ROW)]
    if raw is None:
        return AutoRecoveryConfig(), [SettingsWarning(WHOLE_COLUMN, None, WHY_NULL)]
    if not isinstance(raw, Mapping):
        return AutoRecoveryConfig(), [SettingsWarning(WHOLE_COLUMN, _json_safe(raw), WHY_NOT_OBJECT)]
    values: dict[str, Any] = {}
    warnings: list[SettingsWarning] = []
    for key, validate in VALIDATORS.items():
        if key not in raw:
            continue
        value, why = validate(raw[key])
        if why is None:
            values[key] = value
        else:
            warnings.append(SettingsWarning(key, _json_safe(raw[key]), why))
    values.update(resume_parse(raw))
    return AutoRecoveryConfig(**values), warnings
