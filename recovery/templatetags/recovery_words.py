"""Template filters that put the reports' codes and times in the admin's words (recovery.sweep.labels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from recovery.sweep.labels import bridge_file_text, moment_text

register = template.Library()


@register.filter
def moment(value: Any) -> str:
    """ "2026-12-07 14:05:30 UTC" for a datetime or an ISO-8601 string."""
    return moment_text(value) if value not in (None, "") else "-"


@register.filter
def bridge_file(gate: Any, unit: str) -> str:
    """ "12 s old, 3 symbols" / "no data: older than its age limit (too_old)"."""
    return bridge_file_text(gate, unit=unit) if isinstance(gate, Mapping) else "-"
