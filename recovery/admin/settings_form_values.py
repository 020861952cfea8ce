"""What the settings form shows for a stored auto_recovery value, and what a browser posted.

Used by AutoRecoverySettingsForm to render a row and, after a refused concurrent save,
to compare what the page was opened with against what is stored now.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from recovery.sweep.config import EDITABLE_KEYS, BlackoutWindow, config_parse, resume_parse, unfilled_parse

MSG_OTHERS_JSON = "Not valid JSON: {error}."
MSG_OTHERS_OBJECT = 'Must be a JSON object ({"key": value, ...}); write {} for no other key.'


def auto_recovery_digest(value: Any) -> str:
    """sha256 of the canonical JSON of a stored auto_recovery value, as Django hands it back.

    A raw str (text that is not JSON, or a JSON string) is digested as its JSON encoding,
    so the text '{"a":1}' and the object {"a": 1} never share a digest.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def blackout_windows_text(windows: Iterable[BlackoutWindow]) -> str:
    return ", ".join(f"{w.start:%H:%M}-{w.end:%H:%M}" for w in windows)


def other_keys_parse(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(MSG_OTHERS_JSON.format(error=exc), code="json") from exc
    if not isinstance(value, dict):
        raise ValidationError(MSG_OTHERS_OBJECT, code="not_object")
    return value


def other_keys_text(stored: Any) -> str:
    others = {k: v for k, v in stored.items() if k not in EDITABLE_KEYS} if isinstance(stored, dict) else {}
    return json.dumps(others, indent=2, sort_keys=True, ensure_ascii=False) if others else "{}"


def form_values(stored: Any) -> dict[str, Any]:
    """What the form shows for a stored value: defaults for missing and invalid keys."""
    config, _ = config_parse(stored)
    values: dict[str, Any] = config.as_dict()
    values["blackout_windows"] = blackout_windows_text(config.blackout_windows)
    values.update(unfilled_parse(stored))
    values.update(resume_parse(stored))
    values["other_keys"] = other_keys_text(stored)
    values["digest"] = auto_recovery_digest(stored)
    values["shown"] = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    return values


def json_or_none(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def same_shown(a: Any, b: Any) -> bool:
    return str(a).strip() == str(b).strip() if not isinstance(a, bool) else a == b


def shown_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).replace("\n", " ")
    return text if text else "(none)"


def posted(data: Any, name: str, field: forms.Field) -> Any:
    """The value a browser sent for a field (a checkbox: sent or not)."""
    if isinstance(field, forms.BooleanField):
        return name in data and data.get(name) not in ("", "false", "off")
    return data.get(name, "")


def posted_set(data: Any, name: str, field: forms.Field, value: Any) -> None:
    if isinstance(field, forms.BooleanField):
        if value:
            data[name] = "on"
        else:
            data.pop(name, None)
        return
    data[name] = str(value)
