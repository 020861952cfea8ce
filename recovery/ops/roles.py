"""The two groups ops staff are given: who may recover orders, who may only look.

roles_ensure() makes each group hold exactly its permissions (run it again after an
upgrade: it adds what is new and removes what a hand edit added); role_user_assign()
puts a user in one of them, creating the account without a password when it is new.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction

OPERATORS = "Recovery operators"
VIEWERS = "Recovery viewers"
VIEW_ONLY = (
    ("view_tradeorder", "see the orders, the status page and the recovery chain"),
    ("view_auditlog", "read the audit trail"),
    ("view_tradesettings", "read the auto_recovery settings"),
    ("view_sweeprun", "read the heartbeat of the sweep's runs"),
)
ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    OPERATORS: (
        *VIEW_ONLY,
        (
            "run_auto_recovery",
            "run a recovery: the admin's action and sweep button, POST /api/recovery/sweep",
        ),
        ("change_tradesettings", "change the auto_recovery settings (audited)"),
    ),
    VIEWERS: VIEW_ONLY,
}
MSG_NO_PERMISSIONS = "permissions missing: {codenames}; run `manage.py migrate` first"


class RolesNotReady(Exception):
    """The permissions do not exist yet (migrate has not run); the command says so, exit 2."""


@dataclass(frozen=True)
class RoleReport:
    name: str
    created: bool
    permissions: tuple[tuple[str, str], ...]  # (codename, what it allows)


def roles_ensure() -> list[RoleReport]:
    wanted = {codename for grants in ROLES.values() for codename, _ in grants}
    found = {
        p.codename: p
        for p in Permission.objects.filter(content_type__app_label="recovery", codename__in=wanted)
    }
    if missing := sorted(wanted - set(found)):
        raise RolesNotReady(MSG_NO_PERMISSIONS.format(codenames=", ".join(missing)))
    reports = []
    with transaction.atomic():
        for name, grants in ROLES.items():
            group, created = Group.objects.get_or_create(name=name)
            group.permissions.set([found[codename] for codename, _ in grants])
            reports.append(RoleReport(name=name, created=created, permissions=grants))
    return reports


def role_user_assign(*, username: str, role: str) -> tuple[AbstractBaseUser, bool]:
    """Put `username` in `role` (and out of the other role); staff, so the admin lets them in.

    A new user gets no usable password: `manage.py changepassword <username>` sets one.
    Returns the user and whether it was created.
    """
    user_model = get_user_model()
    with transaction.atomic():
        user, created = user_model.objects.get_or_create(**{user_model.USERNAME_FIELD: username})
        if created:
            user.set_unusable_password()
        user.is_staff = True
        user.save()
        user.groups.remove(*Group.objects.filter(name__in=set(ROLES) - {role}))
        user.groups.add(Group.objects.get(name=role))
    return user, created
