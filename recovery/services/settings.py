"""Writes of the settings page: the typed keys of trade_settings.auto_recovery."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from recovery.db.audit import ACTION_SETTINGS_UPDATE, RESOURCE_SETTINGS, AuditEntry, audit_entries_write
from recovery.db.models import TradeSettings
from recovery.db.routers import trading_alias
from recovery.sweep.config import EDITABLE_KEYS, EDITABLE_VALIDATORS

MSG_UNKNOWN_KEY = "{key!r} is not an auto_recovery key this project knows; it writes only its own keys"
MSG_INVALID_VALUE = "auto_recovery {key}={value!r}: {why}"


def auto_recovery_settings_update(
    *,
    row: TradeSettings,
    values: Mapping[str, Any],
    actor: str,
    now: dt.datetime,
    others: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the typed `values` into row's auto_recovery and audit it; return the stored object.

    The new object is the stored one (or {} when the column holds no JSON object) with
    the keys of `values` replaced; keys this project does not know stay untouched. A key
    whose stored value is valid and means the same keeps its exact stored JSON (2 stays
    2 for a float key), so only real changes count.

    A save that changes nothing writes nothing: no UPDATE (updated_at stays), no audit
    row; the audit trail records changes only. Otherwise one UPDATE of auto_recovery and
    updated_at, and one audit row (before, after, changed_keys), in one transaction.

    The row is locked and re-read here, so the merge starts from what is stored now and
    never drops a key the backend just wrote. Refusing a save whose row changed since a
    form showed it is the caller's check, made under the same lock
    (AutoRecoverySettingsForm). Raises ValueError for an unknown key or an invalid value.

    `others`, when given, replaces the keys this project does not edit (the settings
    page shows them as one JSON object, under the same row lock and digest check).
    """
    _values_check(values)
    alias = trading_alias()
    with transaction.atomic(using=alias):
        before = (
            TradeSettings.objects.using(alias)
            .select_for_update()
            .values_list("auto_recovery", flat=True)
            .get(pk=row.pk)
        )
        after, changed_keys = _merged(before, values)
        if others is not None:
            after, changed_keys = _others_replaced(after, changed_keys, others)
        if not changed_keys:
            return after
        TradeSettings.objects.using(alias).filter(pk=row.pk).update(auto_recovery=after, updated_at=now)
        entry = AuditEntry(
            actor=actor,
            action=ACTION_SETTINGS_UPDATE,
            resource_type=RESOURCE_SETTINGS,
            resource_id=row.pk,
            detail={"before": _json_safe(before), "after": after, "changed_keys": changed_keys},
        )
        audit_entries_write([entry], now=now)
    row.auto_recovery, row.updated_at = after, now
    return after


def _values_check(values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if key not in EDITABLE_KEYS:
            raise ValueError(MSG_UNKNOWN_KEY.format(key=key))
        _, why = EDITABLE_VALIDATORS[key](value)
        if why is not None:
            raise ValueError(MSG_INVALID_VALUE.format(key=key, value=value, why=why))


def _merged(before: Any, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    stored: dict[str, Any] = before if isinstance(before, dict) else {}
    after = dict(stored)
    changed_keys = []
    for key, value in values.items():
        if key in stored and _same_setting(key, stored[key], value):
            continue
        after[key] = value
        changed_keys.append(key)
    return after, changed_keys


def _same_setting(key: str, stored: Any, value: Any) -> bool:
    """Both valid and equal once parsed: true and 1 differ, 2 and 2.0 do not."""
    old, why = EDITABLE_VALIDATORS[key](stored)
    return why is None and old == EDITABLE_VALIDATORS[key](value)[0]


def _others_replaced(
    after: dict[str, Any], changed_keys: list[str], others: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    kept = {k: v for k, v in after.items() if k in EDITABLE_KEYS}
    old = {k: v for k, v in after.items() if k not in EDITABLE_KEYS}
    new = {k: v for k, v in others.items() if k not in EDITABLE_KEYS}
    changed = [k for k in sorted(old.keys() | new.keys()) if _json(old, k) != _json(new, k)]
    return {**kept, **new}, changed_keys + changed


def _json_safe(value: Any) -> Any:
    """The stored value for the audit row; a number JSON cannot hold (1e400 read as inf) as text."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(value)
    return value


def _json(values: Mapping[str, Any], key: str) -> str | None:
    """A key's value as canonical JSON (None when absent): true and 1 differ here too."""
    return json.dumps(values[key], sort_keys=True) if key in values else None
