"""The settings page: typed auto_recovery fields, audit, concurrent edits, bad stored values."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import OperationalError, connections, transaction
from django.urls import reverse

from recovery.admin.forms import (
    MSG_BLACKOUT_FORMAT,
    MSG_BLACKOUT_WINDOW,
    MSG_CHANGED,
    MSG_CHANGED_AGAIN,
    MSG_INVALID,
    MSG_NO_DIGEST,
    MSG_OTHERS_CONFLICT,
    MSG_OTHERS_TYPED,
    AutoRecoverySettingsForm,
    auto_recovery_digest,
)
from recovery.admin.trade_settings import MSG_NO_CHANGE, MSG_NOT_OBJECT, _kind, auto_recovery_summary_text
from recovery.db.audit import ACTION_SETTINGS_UPDATE, RESOURCE_SETTINGS
from recovery.db.models import AuditLog, TradeSettings
from recovery.db.routers import trading_alias
from recovery.services.settings import auto_recovery_settings_update
from recovery.sweep.config import (
    RANGES,
    UNFILLED_RANGES,
    UNFILLED_VALIDATORS,
    VALIDATORS,
    WHY_INT,
    WHY_RANGE,
    AutoRecoveryConfig,
)
from recovery.tests import factories

TYPED_KEYS = (
    "enabled",
    "new_timeout_seconds",
    "max_auto_retries",
    "max_price_deviation_pct",
    "allow_replace_outside_rth",
    "max_replacements_per_sweep",
    "blackout_windows",
)
STORED = {
    "enabled": True,
    "new_timeout_seconds": 45,
    "max_auto_retries": 1,
    "max_price_deviation_pct": 1.5,
    "allow_replace_outside_rth": False,
    "max_replacements_per_sweep": 20,
    "blackout_windows": [{"start": "23:45", "end": "00:15"}],
    "unfilled_timeout_seconds": 300,  # the backend's own key: never touched here
}
LONG_AGO = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def change_url(row: TradeSettings) -> str:
    return reverse("admin:recovery_tradesettings_change", args=[row.pk])


def row_reload(row: TradeSettings) -> TradeSettings:
    return TradeSettings.objects.get(pk=row.pk)


def audit_rows() -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=ACTION_SETTINGS_UPDATE).order_by("id"))


class Inputs(HTMLParser):
    """The attributes of every <input>, by name, and whether any <textarea> was seen."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str | None]] = {}
        self.textareas: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "input" and values.get("name"):
            self.inputs[values["name"]] = values
        if tag == "textarea":
            self.textareas.append(values.get("name"))


def page_digest(client, row: TradeSettings) -> str:  # noqa: ANN001
    response = client.get(change_url(row))
    assert response.status_code == 200
    return response.context["adminform"].form["digest"].value()


def post_data(digest: str, **overrides: Any) -> dict[str, Any]:
    """What the browser sends for the form: unchecked checkboxes are simply absent."""
    values = {
        "enabled": True,
        "new_timeout_seconds": 60,
        "max_auto_retries": 2,
        "max_price_deviation_pct": 2.5,
        "allow_replace_outside_rth": False,
        "replace_same_trading_day_only": True,
        "max_replacements_per_sweep": 30,
        "max_replacements_per_hour": 60,
        "blackout_windows": "23:45-00:15, 09:25-09:35",
        "unfilled_timeout_seconds": 300,
        "unfilled_reprice_interval_seconds": 0,
        "unfilled_max_reprices": 0,
        "unfilled_max_price_deviation_pct": 1.5,
        "auto_resume_partial_remaining": True,
        "auto_resume_partial_max_attempts": 1,
        **overrides,
    }
    data = {key: value for key, value in values.items() if value is not False}
    for key in ("enabled", "allow_replace_outside_rth", "replace_same_trading_day_only",
                "auto_resume_partial_remaining"):  # fmt: skip
        if data.get(key) is True:
            data[key] = "on"
    data["digest"] = digest
    return data


@pytest.fixture
def row(db: None) -> TradeSettings:
    return factories.TradeSettingsFactory(
        auto_recovery=dict(STORED), risk_defaults={"max_position_pct": 0.1}, updated_at=LONG_AGO
    )


@pytest.fixture
def staff_client(client, django_user_model):  # noqa: ANN001, ANN201
    """A staff user allowed to view and change trade settings, nothing else."""
    user = django_user_model.objects.create_user(username="ops-anna", password="x", is_staff=True)
    codenames = ["view_tradesettings", "change_tradesettings"]
    permissions = Permission.objects.filter(content_type__app_label="recovery", codename__in=codenames)
    assert permissions.count() == 2
    user.user_permissions.add(*permissions)
    client.force_login(user)
    return client


# --- the page ------------------------------------------------------------------------


def test_change_page_renders_typed_inputs(admin_client, row: TradeSettings) -> None:
    response = admin_client.get(change_url(row))

    assert response.status_code == 200
    page = Inputs(response.content.decode())
    assert page.textareas == ["other_keys"]  # only the keys nobody types; never auto_recovery whole
    assert "auto_recovery" not in page.inputs
    for key in ("enabled", "allow_replace_outside_rth"):
        assert page.inputs[key]["type"] == "checkbox"
    assert "checked" in page.inputs["enabled"]
    assert "checked" not in page.inputs["allow_replace_outside_rth"]
    for key, (low, high) in RANGES.items():
        attrs = page.inputs[key]
        assert attrs["type"] == "number"
        assert (attrs["min"], attrs["max"]) == (str(low), str(high))
        # A key the row does not hold shows its default.
        assert attrs["value"] == str(STORED.get(key, getattr(AutoRecoveryConfig(), key)))
    assert page.inputs["blackout_windows"]["type"] == "text"
    assert page.inputs["blackout_windows"]["value"] == "23:45-00:15"
    assert page.inputs["digest"]["type"] == "hidden"
    assert page.inputs["digest"]["value"] == auto_recovery_digest(STORED)
    # The backend's four keys, typed, with its defaults where the row has none.
    assert page.inputs["unfilled_timeout_seconds"]["value"] == "300"
    assert page.inputs["unfilled_reprice_interval_seconds"]["value"] == "0"
    assert page.inputs["unfilled_max_reprices"]["value"] == "0"
    assert page.inputs["unfilled_max_price_deviation_pct"]["value"] == "1.5"
    for key, (low, high) in UNFILLED_RANGES.items():
        assert (page.inputs[key]["min"], page.inputs[key]["max"]) == (str(low), str(high))
    form = response.context["adminform"].form
    assert all(form.fields[key].help_text for key in TYPED_KEYS)
    # Read only: the other columns.
    content = response.content.decode()
    assert "max_position_pct" in content
    assert "execution_data_source" not in page.inputs and "risk_defaults" not in page.inputs


def test_widget_ranges_agree_with_the_sweeps_validators() -> None:
    checks = {**VALIDATORS, **UNFILLED_VALIDATORS}
    for key, (low, high) in {**RANGES, **UNFILLED_RANGES}.items():
        kind = float if key.endswith("_pct") else int
        assert checks[key](kind(low))[1] is None
        assert checks[key](kind(high))[1] is None
        assert checks[key](kind(low) - 1)[1] == WHY_RANGE.format(low=low, high=high)
        assert checks[key](kind(high) + 1)[1] == WHY_RANGE.format(low=low, high=high)


def test_initial_values_fall_back_to_defaults_for_missing_and_invalid_keys(db: None) -> None:
    row = factories.TradeSettingsFactory(auto_recovery={"new_timeout_seconds": "soon", "max_auto_retries": 3})

    form = AutoRecoverySettingsForm(instance=row)

    assert form.initial["new_timeout_seconds"] == 45  # invalid: the default, as the sweep uses
    assert form.initial["max_auto_retries"] == 3
    assert form.initial["enabled"] is True  # missing: the default
    assert form.initial["blackout_windows"] == ""


def test_invalid_stored_key_is_reported_and_saving_replaces_it(admin_client, db: None) -> None:
    row = factories.TradeSettingsFactory(auto_recovery={"new_timeout_seconds": "soon", "keep": 1})

    response = admin_client.get(change_url(row))

    assert response.status_code == 200
    assert "new_timeout_seconds=&quot;soon&quot; is invalid" in response.content.decode()
    digest = response.context["adminform"].form["digest"].value()
    admin_client.post(change_url(row), post_data(digest, new_timeout_seconds=45))
    stored = row_reload(row).auto_recovery
    assert stored["new_timeout_seconds"] == 45 and stored["keep"] == 1


def test_changelist_lists_rows_with_a_summary(admin_client, row: TradeSettings) -> None:
    TradeSettings.objects.filter(pk=row.pk).update(auto_recovery={**STORED, "note": "kept"})
    factories.TradeSettingsFactory(auto_recovery="oops")

    response = admin_client.get(reverse("admin:recovery_tradesettings_changelist"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "timeout 45s" in content and "+1 other key(s)" in content
    assert "not a JSON object" in content


def test_summary_text() -> None:
    assert auto_recovery_summary_text(None) == "NULL: defaults apply"
    assert auto_recovery_summary_text({"enabled": False, "x": 1}).startswith("DISABLED, timeout 45s")
    assert "1 invalid key(s)" in auto_recovery_summary_text({"max_auto_retries": 11})


# --- saving --------------------------------------------------------------------------


def test_valid_save_writes_json_keeps_unknown_keys_and_audits(staff_client, row: TradeSettings) -> None:
    digest = page_digest(staff_client, row)

    response = staff_client.post(
        change_url(row), post_data(digest, enabled=False, allow_replace_outside_rth=True)
    )

    assert response.status_code == 302
    expected = {
        "enabled": False,
        "new_timeout_seconds": 60,
        "max_auto_retries": 2,
        "max_price_deviation_pct": 2.5,
        "allow_replace_outside_rth": True,
        "max_replacements_per_sweep": 30,
        "blackout_windows": [{"start": "23:45", "end": "00:15"}, {"start": "09:25", "end": "09:35"}],
        "unfilled_timeout_seconds": 300,
    }
    saved = row_reload(row)
    assert saved.auto_recovery == expected
    assert saved.risk_defaults == {"max_position_pct": 0.1}
    assert saved.updated_at > LONG_AGO
    [audit] = audit_rows()
    assert audit.actor == "admin:ops-anna"
    assert (audit.resource_type, audit.resource_id) == (RESOURCE_SETTINGS, row.pk)
    assert audit.detail == {
        "before": STORED,
        "after": expected,
        "changed_keys": [
            "enabled",
            "new_timeout_seconds",
            "max_auto_retries",
            "max_price_deviation_pct",
            "allow_replace_outside_rth",
            "max_replacements_per_sweep",
            "blackout_windows",
        ],
    }


def test_superuser_save_is_audited_under_its_name(admin_client, admin_user, row: TradeSettings) -> None:
    digest = page_digest(admin_client, row)

    admin_client.post(change_url(row), post_data(digest, max_auto_retries=0))

    [audit] = audit_rows()
    assert audit.actor == f"admin:{admin_user.get_username()}"
    assert row_reload(row).auto_recovery["max_auto_retries"] == 0


def test_save_that_changes_nothing_writes_nothing(admin_client, row: TradeSettings) -> None:
    digest = page_digest(admin_client, row)
    unchanged = post_data(
        digest,
        new_timeout_seconds=45,
        max_auto_retries=1,
        max_price_deviation_pct=1.5,
        max_replacements_per_sweep=20,
        blackout_windows="23:45-00:15",
    )

    response = admin_client.post(change_url(row), unchanged, follow=True)

    shown = [str(m) for m in response.context["messages"]]
    assert shown == [MSG_NO_CHANGE]  # one message: not "changed successfully" beside it
    assert audit_rows() == []
    saved = row_reload(row)
    assert saved.auto_recovery == STORED
    assert saved.updated_at == LONG_AGO


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("new_timeout_seconds", 0, MSG_INVALID.format(why=WHY_RANGE.format(low=1, high=86400))),
        ("new_timeout_seconds", 86401, MSG_INVALID.format(why=WHY_RANGE.format(low=1, high=86400))),
        ("max_auto_retries", 11, MSG_INVALID.format(why=WHY_RANGE.format(low=0, high=10))),
        ("max_price_deviation_pct", -1, MSG_INVALID.format(why=WHY_RANGE.format(low=0, high=100))),
        ("max_price_deviation_pct", 100.5, MSG_INVALID.format(why=WHY_RANGE.format(low=0, high=100))),
        ("max_replacements_per_sweep", 0, MSG_INVALID.format(why=WHY_RANGE.format(low=1, high=1000))),
        ("max_replacements_per_sweep", 1001, MSG_INVALID.format(why=WHY_RANGE.format(low=1, high=1000))),
        (
            "blackout_windows",
            "25:00-01:00",
            MSG_BLACKOUT_WINDOW.format(
                item="25:00-01:00", problem="start '25:00': hour 25 is out of range (00 to 23)"
            ),
        ),
        (
            "blackout_windows",
            "09:00-10:00, 10:00-10:00",
            MSG_BLACKOUT_WINDOW.format(item="10:00-10:00", problem="start equals end"),
        ),
        ("blackout_windows", "garbage", MSG_BLACKOUT_FORMAT.format(item="garbage")),
    ],
)
def test_invalid_field_is_refused_with_its_message(
    admin_client, row: TradeSettings, field: str, value: Any, message: str
) -> None:
    digest = page_digest(admin_client, row)

    response = admin_client.post(change_url(row), post_data(digest, **{field: value}))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {field: [message]}
    saved = row_reload(row)
    assert saved.auto_recovery == STORED and saved.updated_at == LONG_AGO
    assert audit_rows() == []


def test_post_without_digest_is_refused(admin_client, row: TradeSettings) -> None:
    response = admin_client.post(change_url(row), post_data(""))

    assert response.context["adminform"].form.non_field_errors() == [MSG_NO_DIGEST]
    assert row_reload(row).auto_recovery == STORED


def test_concurrent_change_is_refused_shows_what_changed_and_keeps_the_input(
    admin_client, row: TradeSettings
) -> None:
    opened = admin_client.get(change_url(row)).context["adminform"].form
    digest, shown = opened["digest"].value(), opened["shown"].value()
    backend_value = {**STORED, "new_timeout_seconds": 90, "max_auto_retries": 3, "unfilled_max_reprices": 2}
    TradeSettings.objects.filter(pk=row.pk).update(auto_recovery=backend_value)  # the backend writes

    # The user changed the timeout (as the backend did) and the breaker; not the retries.
    mine = post_data(digest, shown=shown, new_timeout_seconds=60, max_auto_retries=1)
    response = admin_client.post(change_url(row), mine)

    assert response.status_code == 200
    form = response.context["adminform"].form
    errors = form.non_field_errors()
    assert errors[0] == MSG_CHANGED and errors[-1] == MSG_CHANGED_AGAIN
    assert "new_timeout_seconds: then 45, now 90" in errors
    assert "max_auto_retries: then 1, now 3" in errors
    assert "unfilled_max_reprices: then 0, now 2" in errors
    assert MSG_CHANGED in response.content.decode()
    assert row_reload(row).auto_recovery == backend_value
    assert audit_rows() == []
    # What the user typed stays; what they had not touched now shows the stored value.
    assert form["new_timeout_seconds"].value() == "60"
    assert form["max_replacements_per_sweep"].value() == "30"
    assert form["max_auto_retries"].value() == "3"
    assert form["unfilled_max_reprices"].value() == "2"
    assert form["digest"].value() == auto_recovery_digest(backend_value)

    # Saving again, having seen the changes, applies the user's input over them.
    again = {key: form[key].value() for key in ("digest", "shown")}
    response = admin_client.post(
        change_url(row),
        post_data(again["digest"], shown=again["shown"], max_auto_retries=3, unfilled_max_reprices=2),
    )
    assert response.status_code == 302
    saved = row_reload(row).auto_recovery
    assert (saved["new_timeout_seconds"], saved["max_auto_retries"], saved["unfilled_max_reprices"]) == (
        60,
        3,
        2,
    )


def test_concurrent_change_without_the_opened_value_is_refused_and_rearmed(
    admin_client, row: TradeSettings
) -> None:
    digest = page_digest(admin_client, row)
    backend_value = {**STORED, "new_timeout_seconds": 90}
    TradeSettings.objects.filter(pk=row.pk).update(auto_recovery=backend_value)

    response = admin_client.post(change_url(row), post_data(digest))

    form = response.context["adminform"].form
    assert form.non_field_errors() == [MSG_CHANGED, MSG_CHANGED_AGAIN]
    assert form["digest"].value() == auto_recovery_digest(backend_value)
    assert row_reload(row).auto_recovery == backend_value


def test_row_deleted_meanwhile_is_refused(admin_client, row: TradeSettings) -> None:
    digest = page_digest(admin_client, row)
    form = AutoRecoverySettingsForm(post_data(digest), instance=row)
    TradeSettings.objects.filter(pk=row.pk).delete()

    with transaction.atomic(using=trading_alias()):
        assert not form.is_valid()

    assert form.non_field_errors() == [MSG_CHANGED]


# --- stored values that are not a JSON object ----------------------------------------
# SQLite's reference DDL (like MariaDB's JSON type) has a json_valid CHECK, so text that
# is not JSON cannot be stored in a test. Valid JSON that is not an object exercises the
# same path: Django's JSONField hands back a str (or a list, a number) either way.


@pytest.mark.parametrize(
    ("stored", "raw_text"),
    [("oops", "oops"), ([1, 2], "[\n  1,\n  2\n]"), (42, "42")],
)
def test_stored_value_that_is_not_an_object_renders_with_an_error(
    admin_client, db: None, stored: Any, raw_text: str
) -> None:
    row = factories.TradeSettingsFactory(auto_recovery=stored)

    response = admin_client.get(change_url(row))

    assert response.status_code == 200
    content = response.content.decode()
    assert MSG_NOT_OBJECT.format(kind=_kind(stored)) in content
    assert f"<pre>{raw_text}</pre>" in content
    page = Inputs(content)
    assert page.inputs["new_timeout_seconds"]["value"] == "45"  # the defaults
    assert page.inputs["digest"]["value"] == auto_recovery_digest(stored)


def test_saving_over_a_value_that_is_not_an_object_writes_a_fresh_object(admin_client, db: None) -> None:
    row = factories.TradeSettingsFactory(auto_recovery="oops")
    digest = page_digest(admin_client, row)

    response = admin_client.post(
        change_url(row), post_data(digest, blackout_windows="", unfilled_timeout_seconds=600)
    )

    assert response.status_code == 302
    stored = row_reload(row).auto_recovery
    assert stored["new_timeout_seconds"] == 60 and stored["blackout_windows"] == []
    assert set(stored) == set(TYPED_KEYS)
    [audit] = audit_rows()
    assert audit.detail["before"] == "oops"
    assert audit.detail["changed_keys"] == list(TYPED_KEYS)


def test_digest_tells_a_json_string_from_the_object_it_spells() -> None:
    assert auto_recovery_digest('{"a":1}') != auto_recovery_digest({"a": 1})
    assert auto_recovery_digest({"b": 1, "a": 2}) == auto_recovery_digest({"a": 2, "b": 1})


# --- permissions ---------------------------------------------------------------------


def test_add_and_delete_are_refused_even_for_the_superuser(admin_client, row: TradeSettings) -> None:
    assert admin_client.get(reverse("admin:recovery_tradesettings_add")).status_code == 403
    delete_url = reverse("admin:recovery_tradesettings_delete", args=[row.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert TradeSettings.objects.filter(pk=row.pk).exists()
    changelist = admin_client.get(reverse("admin:recovery_tradesettings_changelist"))
    assert "delete_selected" not in changelist.content.decode()


def test_view_only_user_sees_settings_and_cannot_save(client, django_user_model, row: TradeSettings) -> None:
    user = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_tradesettings"))
    client.force_login(user)

    response = client.get(change_url(row))

    assert response.status_code == 200
    assert "new_timeout_seconds" not in Inputs(response.content.decode()).inputs
    assert "Settings in force" in response.content.decode()
    assert "&quot;new_timeout_seconds&quot;: 45" in response.content.decode()
    assert client.post(change_url(row), post_data("x")).status_code == 403
    assert row_reload(row).auto_recovery == STORED


# --- the service ---------------------------------------------------------------------


def test_service_keeps_the_stored_form_of_unchanged_values(row: TradeSettings) -> None:
    TradeSettings.objects.filter(pk=row.pk).update(auto_recovery={**STORED, "max_price_deviation_pct": 2})
    now = dt.datetime(2026, 11, 24, 16, 0, tzinfo=dt.UTC)

    after = auto_recovery_settings_update(
        row=row, values={"max_price_deviation_pct": 2.0, "max_auto_retries": 3}, actor="admin:x", now=now
    )

    assert after["max_price_deviation_pct"] == 2 and type(after["max_price_deviation_pct"]) is int
    [audit] = audit_rows()
    assert audit.detail["changed_keys"] == ["max_auto_retries"]
    assert row_reload(row).updated_at == now


@pytest.mark.parametrize(
    "values",
    [{"note": 10}, {"enabled": 1}, {"new_timeout_seconds": 0}, {"unfilled_max_reprices": -1}],
)
def test_service_refuses_unknown_keys_and_invalid_values(row: TradeSettings, values: dict) -> None:
    with pytest.raises(ValueError):
        auto_recovery_settings_update(row=row, values=values, actor="admin:x", now=LONG_AGO)

    assert row_reload(row).auto_recovery == STORED
    assert audit_rows() == []


# --- the row lock (MariaDB) ----------------------------------------------------------


@pytest.mark.mysql
def test_form_holds_the_row_lock_until_the_save_commits(committed_db: None) -> None:
    row = factories.TradeSettingsFactory(auto_recovery=dict(STORED))
    form = AutoRecoverySettingsForm(post_data(auto_recovery_digest(STORED)), instance=row)
    other = connections.create_connection(trading_alias())
    try:
        with transaction.atomic(using=trading_alias()):
            assert form.is_valid(), form.errors
            with other.cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
                with pytest.raises(OperationalError):  # the backend's write waits for the lock
                    cursor.execute("UPDATE trade_settings SET auto_recovery = '{}' WHERE id = %s", [row.pk])
    finally:
        other.close()


# --- the other keys, as one JSON object ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{not json",
            "Not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1).",
        ),
        (
            "[1, 2]",
            'Must be a JSON object ({"key": value, ...}); write {} for no other key.',
        ),  # no doubled braces
        ("", "Not valid JSON: Expecting value: line 1 column 1 (char 0)."),
        (
            '{"new_timeout_seconds": 0}',
            MSG_OTHERS_TYPED.format(key="new_timeout_seconds", why="must be between 1 and 86400"),
        ),
        (
            '{"unfilled_max_reprices": true}',
            MSG_OTHERS_TYPED.format(key="unfilled_max_reprices", why=WHY_INT),
        ),
        (
            '{"new_timeout_seconds": 61}',
            MSG_OTHERS_CONFLICT.format(key="new_timeout_seconds", value="61", field="60"),
        ),
    ],
)
def test_other_keys_must_be_a_valid_object(admin_client, row: TradeSettings, text: str, message: str) -> None:
    digest = page_digest(admin_client, row)

    response = admin_client.post(change_url(row), post_data(digest, other_keys=text))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"other_keys": [message]}
    assert row_reload(row).auto_recovery == STORED


def test_other_keys_are_edited_added_and_removed_with_an_audit_diff(admin_client, row: TradeSettings) -> None:
    TradeSettings.objects.filter(pk=row.pk).update(auto_recovery={**STORED, "note": "old", "gone": 1})
    digest = page_digest(admin_client, row)
    assert '"note": "old"' in admin_client.get(change_url(row)).content.decode().replace("&quot;", '"')

    text = '{"note": "new", "added": [1, 2], "new_timeout_seconds": 60}'  # the same as its field: fine
    response = admin_client.post(change_url(row), post_data(digest, other_keys=text))

    assert response.status_code == 302
    stored = row_reload(row).auto_recovery
    assert stored["note"] == "new" and stored["added"] == [1, 2] and "gone" not in stored
    assert stored["new_timeout_seconds"] == 60 and stored["unfilled_timeout_seconds"] == 300
    [audit] = audit_rows()
    assert {"note", "added", "gone"} <= set(audit.detail["changed_keys"])


def test_unfilled_keys_are_written_only_when_set_or_stored(admin_client, db: None) -> None:
    row = factories.TradeSettingsFactory(auto_recovery={"new_timeout_seconds": 45})
    digest = page_digest(admin_client, row)

    admin_client.post(
        change_url(row), post_data(digest, unfilled_timeout_seconds=600, unfilled_max_price_deviation_pct=2.0)
    )

    stored = row_reload(row).auto_recovery
    assert "unfilled_timeout_seconds" not in stored  # the backend's default: a missing key means it
    assert stored["unfilled_max_price_deviation_pct"] == 2.0


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("unfilled_timeout_seconds", -1, "must be between 0 and 86400"),
        ("unfilled_max_reprices", 101, "must be between 0 and 100"),
        ("unfilled_max_price_deviation_pct", 100.5, "must be between 0 and 100"),
    ],
)
def test_unfilled_fields_are_checked_like_the_others(
    admin_client, row: TradeSettings, key: str, value: Any, why: str
) -> None:
    digest = page_digest(admin_client, row)

    response = admin_client.post(change_url(row), post_data(digest, **{key: value}))

    assert response.context["adminform"].form.errors == {key: [MSG_INVALID.format(why=why)]}
    assert row_reload(row).auto_recovery == STORED


# --- the backend's auto_resume_partial_* keys: typed, written only when set or stored --------


def test_resume_keys_show_the_backends_values_and_are_written_only_when_changed(
    admin_client, db: None
) -> None:
    """The backend's trade executor resumes a partly filled run by default, once; the page shows
    that, writes nothing for untouched defaults, and writes the switch when it is turned off."""
    row = factories.TradeSettingsFactory(auto_recovery={"new_timeout_seconds": 45})
    form = AutoRecoverySettingsForm(instance=row)
    assert form.initial["auto_resume_partial_remaining"] is True
    assert form.initial["auto_resume_partial_max_attempts"] == 1

    admin_client.post(change_url(row), post_data(page_digest(admin_client, row)))
    assert not {"auto_resume_partial_remaining", "auto_resume_partial_max_attempts"} & set(
        row_reload(row).auto_recovery
    )

    admin_client.post(
        change_url(row),
        post_data(
            page_digest(admin_client, row),
            auto_resume_partial_remaining=False,
            auto_resume_partial_max_attempts=3,
        ),
    )
    stored = row_reload(row).auto_recovery
    assert (
        stored["auto_resume_partial_remaining"] is False and stored["auto_resume_partial_max_attempts"] == 3
    )
    assert "auto_resume_partial_remaining" not in AutoRecoverySettingsForm(
        instance=row_reload(row)
    ).initial.get("other_keys", "")


@pytest.mark.parametrize(
    ("value", "why"), [(0, "must be between 1 and 100"), (101, "must be between 1 and 100")]
)
def test_resume_attempts_refuse_what_the_backend_would_not_do(
    admin_client, row: TradeSettings, value: int, why: str
) -> None:
    """0 is refused: the backend reads it as its default 1, not as "never"."""
    response = admin_client.post(
        change_url(row), post_data(page_digest(admin_client, row), auto_resume_partial_max_attempts=value)
    )
    assert response.context["adminform"].form.errors == {
        "auto_resume_partial_max_attempts": [MSG_INVALID.format(why=why)]
    }
    assert row_reload(row).auto_recovery == STORED
