"""Trade settings: auto_recovery through typed fields; every other column read only."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from recovery.admin.forms import AutoRecoverySettingsForm, auto_recovery_digest
from recovery.db.audit import admin_actor
from recovery.db.models import TradeSettings
from recovery.services.settings import auto_recovery_settings_update
from recovery.sweep.config import (
    EDITABLE_KEYS,
    RESUME_VALIDATORS,
    UNFILLED_VALIDATORS,
    VALIDATORS,
    WHOLE_COLUMN,
    config_parse,
    resume_parse,
    unfilled_parse,
)

# The settings table's keys in its order (config.VALIDATORS), then the form's digest and
# the stored value as the page showed it (for the refused-save diff).
TYPED_FIELDS = (*VALIDATORS, "digest", "shown")
UNFILLED_FIELDS = tuple(UNFILLED_VALIDATORS)
RESUME_FIELDS = tuple(RESUME_VALIDATORS)
MSG_NOT_OBJECT = (
    "The stored auto_recovery is not a JSON object ({kind}), so the sweep uses the defaults. "
    "The fields below show the defaults; saving writes a fresh object from them, replacing "
    "the stored value shown under “Stored value”."
)
MSG_NULL = "auto_recovery is NULL: the sweep uses the defaults shown below; saving writes them."
MSG_INVALID_KEY = (
    "Stored auto_recovery {key}={value} is invalid ({reason}): the sweep uses the default, "
    "shown below; saving writes it."
)
MSG_NO_CHANGE = "No setting differs from the stored values: nothing was written, no audit row added."
NOT_OBJECT_NOTE = "Not a JSON object ({kind}). The raw value as stored:"


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "raw text: either not valid JSON or a JSON string"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, list):
        return "a JSON list"
    return type(value).__name__


def _is_not_object(value: Any) -> bool:
    return value is not None and not isinstance(value, dict)


def _pretty(value: Any) -> SafeString:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def auto_recovery_summary_text(raw: Any) -> str:
    """One line for the changelist: the settings in force and what is off about the JSON."""
    if raw is None:
        return "NULL: defaults apply"
    if not isinstance(raw, dict):
        return f"not a JSON object, defaults apply: {json.dumps(raw)[:60]}"
    config, warnings = config_parse(raw)
    parts = [
        "enabled" if config.enabled else "DISABLED",
        f"timeout {config.new_timeout_seconds}s",
        f"retries {config.max_auto_retries}",
        f"deviation {config.max_price_deviation_pct:g}%",
        "outside RTH allowed" if config.allow_replace_outside_rth else "RTH only",
        f"breaker {config.max_replacements_per_sweep}",
        f"{len(config.blackout_windows)} blackout window(s)",
    ]
    if warnings:
        parts.append(f"{len(warnings)} invalid key(s)")
    if others := len(set(raw) - EDITABLE_KEYS):
        parts.append(f"+{others} other key(s)")
    return ", ".join(parts)


@admin.register(TradeSettings)
class TradeSettingsAdmin(admin.ModelAdmin):
    form = AutoRecoverySettingsForm
    list_display = ("id", "execution_data_source", "auto_recovery_summary", "updated_at")
    ordering = ("-id",)
    readonly_fields = (
        "unfilled_in_force",
        "resume_in_force",
        "id",
        "execution_data_source",
        "risk_defaults_pretty",
        "other_keys_pretty",
        "stored_value",
        "settings_in_force",
        "created_at",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the backend creates the rows

    def has_delete_permission(self, request: HttpRequest, obj: TradeSettings | None = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: TradeSettings | None = None) -> list[tuple[Any, ...]]:
        stored = obj.auto_recovery if obj is not None else None
        problem = ("stored_value",) if _is_not_object(stored) else ()
        # A view-only user sees the settings in force instead of disabled typed fields.
        editable = self.has_change_permission(request, obj)
        typed = TYPED_FIELDS if editable else ("settings_in_force",)
        unfilled = UNFILLED_FIELDS if editable else ("unfilled_in_force",)
        resume = RESUME_FIELDS if editable else ("resume_in_force",)
        return [
            (None, {"fields": ("id", "execution_data_source", "created_at", "updated_at")}),
            ("Auto-recovery sweep", {"fields": problem + typed}),
            (
                "Backend: unfilled broker orders",
                {
                    "fields": unfilled,
                    "description": "Read by the backend's live execution algorithm for orders the "
                    "broker has but does not fill; the sweep does not use them.",
                },
            ),
            (
                "Backend: runs that end partly filled",
                {
                    "fields": resume,
                    "description": "Read by the backend's trade executor when a run ends partly filled; "
                    "the sweep does not use them, but leaves a run's orders alone until the run has ended.",
                },
            ),
            (
                "Other auto_recovery keys",
                {
                    "fields": ("other_keys",) if editable else ("other_keys_pretty",),
                    "description": "Keys neither this page nor the sweep knows: kept exactly as "
                    "stored unless you edit them here.",
                },
            ),
            ("Risk defaults", {"fields": ("risk_defaults_pretty",)}),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: TradeSettings | None = None,
    ) -> HttpResponse:
        # Runs only when the page renders (GET or a refused POST), never after a save.
        if obj is not None:
            self._stored_problems_report(request, obj.auto_recovery)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _stored_problems_report(self, request: HttpRequest, stored: Any) -> None:
        if stored is None:
            self.message_user(request, MSG_NULL, messages.INFO)
        elif not isinstance(stored, dict):
            self.message_user(request, MSG_NOT_OBJECT.format(kind=_kind(stored)), messages.ERROR)
        else:
            for warning in config_parse(stored)[1]:
                if warning.key != WHOLE_COLUMN:
                    text = MSG_INVALID_KEY.format(
                        key=warning.key, value=json.dumps(warning.value), reason=warning.reason
                    )
                    self.message_user(request, text, messages.WARNING)

    def save_model(
        self, request: HttpRequest, obj: TradeSettings, form: AutoRecoverySettingsForm, change: bool
    ) -> None:
        # Never obj.save(): it would write every column back, the backend's included.
        after = auto_recovery_settings_update(
            row=obj,
            values=form.auto_recovery_values(),
            others=form.other_keys_values(),
            actor=admin_actor(request.user.get_username()),
            now=timezone.now(),
        )
        request._recovery_no_change = auto_recovery_digest(after) == form.cleaned_data["digest"]  # type: ignore[attr-defined]

    def response_change(self, request: HttpRequest, obj: TradeSettings) -> HttpResponse:
        # One message for a save that changed nothing, not Django's "changed successfully" too.
        if getattr(request, "_recovery_no_change", False):
            self.message_user(request, MSG_NO_CHANGE, messages.INFO)
            url = reverse("admin:recovery_tradesettings_changelist")
            context = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
            return HttpResponseRedirect(add_preserved_filters(context, url))
        return super().response_change(request, obj)

    @admin.display(description="auto_recovery")
    def auto_recovery_summary(self, obj: TradeSettings) -> str:
        return auto_recovery_summary_text(obj.auto_recovery)

    @admin.display(description="risk defaults")
    def risk_defaults_pretty(self, obj: TradeSettings) -> SafeString:
        return _pretty(obj.risk_defaults)

    @admin.display(description="other keys")
    def other_keys_pretty(self, obj: TradeSettings) -> SafeString | str:
        stored = obj.auto_recovery
        if not isinstance(stored, dict):
            return "(none: the stored value is not a JSON object)"
        others = {key: value for key, value in stored.items() if key not in EDITABLE_KEYS}
        return _pretty(others) if others else "(none)"

    @admin.display(description="stored value")
    def stored_value(self, obj: TradeSettings) -> SafeString | str:
        stored = obj.auto_recovery
        if not _is_not_object(stored):
            return "-"
        raw = stored if isinstance(stored, str) else json.dumps(stored, indent=2, ensure_ascii=False)
        return format_html(
            '<p class="errornote">{}</p><pre>{}</pre>', NOT_OBJECT_NOTE.format(kind=_kind(stored)), raw
        )

    @admin.display(description="settings in force")
    def settings_in_force(self, obj: TradeSettings) -> SafeString:
        return _pretty(config_parse(obj.auto_recovery)[0].as_dict())

    @admin.display(description="backend settings in force")
    def unfilled_in_force(self, obj: TradeSettings) -> SafeString:
        return _pretty(unfilled_parse(obj.auto_recovery))

    @admin.display(description="backend settings in force")
    def resume_in_force(self, obj: TradeSettings) -> SafeString:
        return _pretty(resume_parse(obj.auto_recovery))
