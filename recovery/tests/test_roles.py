"""recovery_roles: two groups with exactly their permissions, idempotent, and users put in them."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from recovery.ops.roles import OPERATORS, ROLES, VIEWERS
from recovery.tests import factories

pytestmark = pytest.mark.django_db


def roles(*args: str) -> str:
    out = io.StringIO()
    call_command("recovery_roles", *args, stdout=out)
    return out.getvalue()


def codenames(group: str) -> set[str]:
    return set(Group.objects.get(name=group).permissions.values_list("codename", flat=True))


def test_creates_both_groups_and_prints_what_each_may_do() -> None:
    out = roles()
    assert codenames(OPERATORS) == {
        "view_tradeorder",
        "view_auditlog",
        "view_tradesettings",
        "view_sweeprun",
        "run_auto_recovery",
        "change_tradesettings",
    }
    assert codenames(VIEWERS) == {"view_tradeorder", "view_auditlog", "view_tradesettings", "view_sweeprun"}
    assert f"{OPERATORS} (created) may:" in out and f"{VIEWERS} (created) may:" in out
    assert "run_auto_recovery" in out.split(VIEWERS)[0]  # listed under the operators
    assert "run_auto_recovery" not in out.split(VIEWERS)[1]


def test_running_again_changes_nothing_and_undoes_hand_edits() -> None:
    roles()
    viewers = Group.objects.get(name=VIEWERS)
    viewers.permissions.add(Permission.objects.get(codename="run_auto_recovery"))
    out = roles()
    assert f"{OPERATORS} (up to date)" in out
    assert Group.objects.filter(name__in=ROLES).count() == 2
    assert "run_auto_recovery" not in codenames(VIEWERS)


def test_a_new_operator_is_staff_without_a_password_until_one_is_set(django_user_model) -> None:  # noqa: ANN001
    out = roles("--operator", "alice")
    alice = django_user_model.objects.get(username="alice")
    assert alice.is_staff and not alice.is_superuser and not alice.has_usable_password()
    assert "manage.py changepassword alice" in out and f"alice is in {OPERATORS}" in out
    assert alice.has_perm("recovery.run_auto_recovery")


def test_a_user_has_one_role(django_user_model) -> None:  # noqa: ANN001
    django_user_model.objects.create_user(username="bob", password="pw")
    roles("--operator", "bob")
    out = roles("--viewer", "bob")
    bob = django_user_model.objects.get(username="bob")
    assert [g.name for g in bob.groups.all()] == [VIEWERS]
    assert bob.has_usable_password() and "changepassword" not in out
    assert not bob.has_perm("recovery.run_auto_recovery") and bob.has_perm("recovery.view_auditlog")
    with pytest.raises(CommandError, match="one role"):
        roles("--operator", "bob", "--viewer", "bob")


def test_without_migrated_permissions_it_says_to_migrate() -> None:
    Permission.objects.filter(codename="run_auto_recovery").delete()
    with pytest.raises(CommandError, match=r"run_auto_recovery; run `manage.py migrate` first"):
        roles()
    assert not Group.objects.filter(name__in=ROLES).exists()


def test_the_roles_work_in_the_admin(client: Client, django_user_model, bridge) -> None:  # noqa: ANN001
    factories.TradeSettingsFactory(auto_recovery={})
    roles("--operator", "olga", "--viewer", "vic")
    changelist = reverse("admin:recovery_tradeorder_changelist")
    sweep = reverse("admin:recovery_tradeorder_sweep")

    client.force_login(django_user_model.objects.get(username="vic"))
    assert client.get(changelist).status_code == 200
    assert client.get(reverse("admin:recovery_auditlog_changelist")).status_code == 200
    assert client.get(sweep).status_code == 403
    settings_row = reverse("admin:recovery_tradesettings_changelist")
    assert client.get(settings_row).status_code == 200

    client.force_login(django_user_model.objects.get(username="olga"))
    body = client.get(changelist).content.decode()
    assert 'value="recover_selected"' in body and sweep in body
    assert client.get(sweep).status_code == 200  # the confirmation page
