"""The typed auto_recovery form of the settings page.

Every key is checked with config.VALIDATORS, the same rules the sweep applies, so the
form never accepts a value the sweep would throw away. The form edits no model field
itself: the write is services.settings.auto_recovery_settings_update.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from recovery.admin.settings_form_values import (  # noqa: F401  (re-exported: the admin and tests use them)
    MSG_OTHERS_JSON,
    MSG_OTHERS_OBJECT,
    auto_recovery_digest,
    blackout_windows_text,
    form_values,
    json_or_none,
    other_keys_parse,
    posted,
    posted_set,
    same_shown,
    shown_text,
)
from recovery.db.models import TradeSettings
from recovery.db.routers import trading_alias
from recovery.sweep.config import (
    EDITABLE_KEYS,
    EDITABLE_RANGES,
    EDITABLE_VALIDATORS,
    RESUME_DEFAULTS,
    UNFILLED_DEFAULTS,
    VALIDATORS,
    AutoRecoveryConfig,
    blackout_window_parse,
)

MSG_CHANGED = (
    "This row was changed by someone else (the trading backend or another user) since you "
    "opened it. Nothing was saved."
)
MSG_CHANGED_AGAIN = (
    "Your input is kept below; fields you had not touched now show the stored values. "
    "Check them and save again to apply your input over these changes."
)
MSG_CHANGE_LINE = "{key}: then {then}, now {now}"
MSG_OTHERS_TYPED = "{key}: {why} (it is a typed setting: its field above checks the same rule)."
MSG_OTHERS_CONFLICT = "{key} is {value} here but {field} in its field above: set it in one place."
MSG_NO_DIGEST = (
    "The form did not carry the digest of the values it showed. Nothing was saved; "
    "reload the page and try again."
)
MSG_INVALID = "This value {why}."
MSG_BLACKOUT_FORMAT = (
    'Write each window as HH:MM-HH:MM, separated by commas (e.g. "23:45-00:15, 09:25-09:35"); '
    '"{item}" is not.'
)
MSG_BLACKOUT_WINDOW = 'Window "{item}": {problem}.'


def blackout_windows_parse(text: str) -> list[dict[str, str]]:
    """ "23:45-00:15, 09:25-09:35" -> [{"start": "23:45", "end": "00:15"}, ...] (config's rules)."""
    windows = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue  # "" and a trailing comma mean no window
        bounds = [bound.strip() for bound in item.split("-")]
        if len(bounds) != 2:
            raise ValidationError(MSG_BLACKOUT_FORMAT.format(item=item), code="format")
        window = blackout_window_parse({"start": bounds[0], "end": bounds[1]})
        if isinstance(window, str):
            raise ValidationError(MSG_BLACKOUT_WINDOW.format(item=item, problem=window), code="window")
        windows.append(window.as_dict())
    return windows


def _number(key: str, *, step: int | str) -> forms.NumberInput:
    # min/max as widget attributes only: min_value/max_value would add Django's own
    # validators and messages next to config's (test_admin_settings checks they agree).
    low, high = EDITABLE_RANGES[key]
    return forms.NumberInput(attrs={"min": low, "max": high, "step": step})


# Keys written only when stored or not at their default (a missing key means its default).
WRITTEN_WHEN_SET: dict[str, Any] = {
    "replace_same_trading_day_only": AutoRecoveryConfig().replace_same_trading_day_only,
    "max_replacements_per_hour": AutoRecoveryConfig().max_replacements_per_hour,
    "replace_run_orders": AutoRecoveryConfig().replace_run_orders,
    **UNFILLED_DEFAULTS,
    **RESUME_DEFAULTS,
}


class AutoRecoverySettingsForm(forms.ModelForm):
    enabled = forms.BooleanField(
        required=False,
        label="Enabled",
        help_text="Master switch: when off, the sweep cancels and re-places nothing.",
    )
    new_timeout_seconds = forms.IntegerField(
        label="NEW timeout (seconds)",
        widget=_number("new_timeout_seconds", step=1),
        help_text="A NEW order older than this many seconds (1 to 86400) is stale and gets recovered.",
    )
    max_auto_retries = forms.IntegerField(
        label="Max auto retries",
        widget=_number("max_auto_retries", step=1),
        help_text="Replacements allowed per original order (0 to 10); 0 = cancel only, never re-place.",
    )
    max_price_deviation_pct = forms.FloatField(
        label="Max price deviation (%)",
        widget=_number("max_price_deviation_pct", step="any"),
        help_text=(
            "LMT and PEG_MID orders: re-place only if the quote is within this percentage of the "
            "limit price (0 to 100); 0 = no price check."
        ),
    )
    allow_replace_outside_rth = forms.BooleanField(
        required=False,
        label="Allow replacements outside regular trading hours",
        help_text="When off, outside NYSE regular hours (holidays and early closes included) "
        "stale orders are cancelled but not re-placed.",
    )
    replace_same_trading_day_only = forms.BooleanField(
        required=False,
        label="Re-place only orders of today",
        help_text="When on, an order created before today's date in New York is cancelled but not "
        "re-placed: last week's order is not what the strategy wants now.",
    )
    replace_run_orders = forms.BooleanField(
        required=False,
        label="Re-place orders of finished runs",
        help_text="When off, a stale order of a run that has ended is cancelled but not re-placed: the "
        "backend's own partial-run resume sends what the run left. When on, it is re-placed as a direct "
        "order, and only when that resume is off or used up.",
    )
    max_replacements_per_sweep = forms.IntegerField(
        label="Max replacements per sweep",
        widget=_number("max_replacements_per_sweep", step=1),
        help_text=(
            "Circuit breaker (1 to 1000): a sweep that would re-place more orders than this "
            "cancels and re-places nothing, and says so loudly."
        ),
    )
    max_replacements_per_hour = forms.IntegerField(
        label="Max replacements per hour",
        widget=_number("max_replacements_per_hour", step=1),
        help_text=(
            "Rolling breaker (1 to 10000): replacements written by every sweep, host, admin and API "
            "in the last 60 minutes; a sweep that would go past it replaces nothing. The admin's "
            "confirmation passes the per-sweep cap, never this one."
        ),
    )
    blackout_windows = forms.CharField(
        required=False,
        label="Blackout windows",
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "23:45-00:15, 09:25-09:35"}),
        help_text=(
            "Daily times when the sweep does nothing, e.g. around the IB gateway's restart: "
            "HH:MM-HH:MM in New York time (24-hour), comma separated; a window may wrap midnight."
        ),
    )
    unfilled_timeout_seconds = forms.IntegerField(
        label="Unfilled timeout (seconds)",
        widget=_number("unfilled_timeout_seconds", step=1),
        help_text="The backend's live execution: cancel a broker order still unfilled after this "
        "many seconds (0 to 86400; default 600); 0 = off. The sweep does not use it.",
    )
    unfilled_reprice_interval_seconds = forms.IntegerField(
        label="Unfilled re-price interval (seconds)",
        widget=_number("unfilled_reprice_interval_seconds", step=1),
        help_text="The backend's live execution: re-price an unfilled limit order this often "
        "(0 to 86400; default 0 = never re-price).",
    )
    unfilled_max_reprices = forms.IntegerField(
        label="Unfilled max re-prices",
        widget=_number("unfilled_max_reprices", step=1),
        help_text="The backend's live execution: at most this many re-prices per order "
        "(0 to 100; default 0).",
    )
    unfilled_max_price_deviation_pct = forms.FloatField(
        label="Unfilled max price deviation (%)",
        widget=_number("unfilled_max_price_deviation_pct", step="any"),
        help_text="The backend's live execution: re-price only within this percentage of the "
        "original limit (0 to 100; default 1.5).",
    )
    auto_resume_partial_remaining = forms.BooleanField(
        required=False,
        label="Resume partly filled runs",
        help_text="The backend's trade executor: when a run ends partly filled (some orders filled, "
        "others cancelled or rejected), start a child run for what is left (default on). An order "
        "the sweep cancels in such a run is part of what is left.",
    )
    auto_resume_partial_max_attempts = forms.IntegerField(
        label="Resumes per run",
        widget=_number("auto_resume_partial_max_attempts", step=1),
        help_text="The backend's trade executor: at most this many child runs per run (1 to 100; "
        "default 1). The backend reads 0 as 1: to stop resuming, untick the box above.",
    )
    other_keys = forms.CharField(
        required=False,
        label="Other keys (JSON object)",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "spellcheck": "false"}),
        help_text="Keys neither this page nor the sweep knows, kept as they are unless you edit "
        "them here. Must be a JSON object; {} means none.",
    )
    digest = forms.CharField(required=False, widget=forms.HiddenInput)
    shown = forms.CharField(required=False, widget=forms.HiddenInput)  # the stored value as opened

    class Meta:
        model = TradeSettings
        fields: list[str] = []  # no column is edited directly; the service writes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.changes_since_opened: list[tuple[str, str, str]] = []
        for name, value in form_values(self.instance.auto_recovery).items():
            self.initial.setdefault(name, value)

    def clean_blackout_windows(self) -> list[dict[str, str]]:
        return blackout_windows_parse(self.cleaned_data["blackout_windows"])

    def clean_other_keys(self) -> dict[str, Any] | None:
        """None when the form did not send the box (the keys then stay exactly as stored)."""
        if "other_keys" not in self.data:
            return None
        return other_keys_parse(self.cleaned_data["other_keys"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for key, validate in EDITABLE_VALIDATORS.items():
            if key in cleaned:
                _, why = validate(cleaned[key])
                if why is not None:
                    self.add_error(key, ValidationError(MSG_INVALID.format(why=why), code="invalid"))
        others = cleaned.get("other_keys")
        if isinstance(others, dict):
            self._typed_keys_in_others_check(others, cleaned)
        self._row_unchanged_check(cleaned.get("digest") or "")
        return cleaned

    def _typed_keys_in_others_check(self, others: dict[str, Any], cleaned: dict[str, Any]) -> None:
        for key in sorted(set(others) & EDITABLE_KEYS):
            value, why = EDITABLE_VALIDATORS[key](others[key])
            if why is not None:
                message = MSG_OTHERS_TYPED.format(key=key, why=why)
            elif key in cleaned and value != EDITABLE_VALIDATORS[key](cleaned[key])[0]:
                shown = json.dumps(others[key])
                message = MSG_OTHERS_CONFLICT.format(key=key, value=shown, field=json.dumps(cleaned[key]))
            else:
                continue  # the same value as its field: harmless, the field writes it
            self.add_error("other_keys", ValidationError(message, code="typed_key"))

    def _row_unchanged_check(self, shown: str) -> None:
        """Lock the row; refuse if its auto_recovery is no longer the value the form showed.

        Must run inside transaction.atomic on the trading alias, as the admin's change
        view does: the lock then holds until the save commits, so the backend cannot
        write between this check and the save.
        """
        if not shown:
            raise ValidationError(MSG_NO_DIGEST, code="no_digest")
        current = (
            TradeSettings.objects.using(trading_alias())
            .select_for_update()
            .filter(pk=self.instance.pk)
            .first()
        )
        if current is None:
            raise ValidationError(MSG_CHANGED, code="changed")
        if auto_recovery_digest(current.auto_recovery) != shown:
            self._show_changes(current.auto_recovery)
            raise ValidationError([MSG_CHANGED, *self._change_lines(), MSG_CHANGED_AGAIN], code="changed")

    def _show_changes(self, current: Any) -> None:
        """Keep the user's input; bring untouched fields up to date; arm the form for a re-save."""
        now = form_values(current)
        data = self.data.copy()
        # Without the value the page was opened with there is nothing to compare: re-arm only.
        then = form_values(json_or_none(self.data.get("shown"))) if self.data.get("shown") else now
        for name in (*EDITABLE_VALIDATORS, "other_keys"):
            if same_shown(then.get(name), now.get(name)):
                continue
            self.changes_since_opened.append((name, shown_text(then.get(name)), shown_text(now.get(name))))
            if same_shown(posted(self.data, name, self.fields[name]), then.get(name)):
                posted_set(data, name, self.fields[name], now.get(name))
        data["digest"], data["shown"] = now["digest"], now["shown"]
        self.data = data

    def _change_lines(self) -> list[str]:
        return [MSG_CHANGE_LINE.format(key=k, then=t, now=n) for k, t, n in self.changes_since_opened]

    def auto_recovery_values(self) -> dict[str, Any]:
        """The typed values as JSON (blackout windows as [{"start", "end"}]).

        The backend's unfilled_* keys, and the sweep's keys added since the first settings
        (replace_same_trading_day_only), are written only when stored already or set to
        something other than their default: a missing key means its default.
        """
        stored = self.instance.auto_recovery if isinstance(self.instance.auto_recovery, dict) else {}
        values = {key: self.cleaned_data[key] for key in VALIDATORS if key not in WRITTEN_WHEN_SET}
        for key, default in WRITTEN_WHEN_SET.items():
            value = self.cleaned_data[key]
            if key in stored or value != default:
                values[key] = value
        return values

    def other_keys_values(self) -> dict[str, Any] | None:
        """The other keys as the user left them (typed keys dropped: their fields write them)."""
        others = self.cleaned_data.get("other_keys")
        if others is None:
            return None
        return {key: value for key, value in others.items() if key not in EDITABLE_KEYS}
