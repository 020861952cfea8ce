"""The typed auto_recovery form of the settings page.

Every key is checked with config.VALIDATORS, the same rules the sweep applies, so the
form never accepts a value the sweep would throw away. The form edits no model field
itself: the write is services.settings.auto_recovery_settings_update.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from recovery.config import RANGES, VALIDATORS, BlackoutWindow, blackout_window_parse, config_parse
from recovery.models import TradeSettings
from recovery.routers import trading_alias

MSG_CHANGED = (
    "This row was changed by someone else (the trading backend or another user) since you "
    "opened it. Nothing was saved; reload the page to see the current values."
)
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


# The widgets' min/max. config.VALIDATORS enforce the same ranges on the server (they do
# not expose them); test_admin_settings checks that both agree.
def auto_recovery_digest(value: Any) -> str:
    """sha256 of the canonical JSON of a stored auto_recovery value, as Django hands it back.

    A raw str (text that is not JSON, or a JSON string) is digested as its JSON encoding,
    so the text '{"a":1}' and the object {"a": 1} never share a digest.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def blackout_windows_text(windows: Iterable[BlackoutWindow]) -> str:
    return ", ".join(f"{w.start:%H:%M}-{w.end:%H:%M}" for w in windows)


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
    # validators and messages next to config's.
    low, high = RANGES[key]
    return forms.NumberInput(attrs={"min": low, "max": high, "step": step})


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
    max_replacements_per_sweep = forms.IntegerField(
        label="Max replacements per sweep",
        widget=_number("max_replacements_per_sweep", step=1),
        help_text=(
            "Circuit breaker (1 to 1000): a sweep that would re-place more orders than this "
            "cancels and re-places nothing, and says so loudly."
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
    digest = forms.CharField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = TradeSettings
        fields: list[str] = []  # no column is edited directly; the service writes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.auto_recovery
        config, _ = config_parse(stored)  # defaults for missing and invalid keys
        initial = config.as_dict()
        initial["blackout_windows"] = blackout_windows_text(config.blackout_windows)
        initial["digest"] = auto_recovery_digest(stored)
        for name, value in initial.items():
            self.initial.setdefault(name, value)

    def clean_blackout_windows(self) -> list[dict[str, str]]:
        return blackout_windows_parse(self.cleaned_data["blackout_windows"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for key, validate in VALIDATORS.items():
            if key in cleaned:
                _, why = validate(cleaned[key])
                if why is not None:
                    self.add_error(key, ValidationError(MSG_INVALID.format(why=why), code="invalid"))
        self._row_unchanged_check(cleaned.get("digest") or "")
        return cleaned

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
        if current is None or auto_recovery_digest(current.auto_recovery) != shown:
            raise ValidationError(MSG_CHANGED, code="changed")

    def auto_recovery_values(self) -> dict[str, Any]:
        """The seven typed values as JSON (blackout windows as [{"start", "end"}])."""
        return {key: self.cleaned_data[key] for key in VALIDATORS}
