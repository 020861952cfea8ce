"""`manage.py recovery_roles`: the operators' and viewers' groups, and who is in them.

Idempotent: every run leaves both groups with exactly their permissions.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recovery.ops.roles import OPERATORS, VIEWERS, RolesNotReady, role_user_assign, roles_ensure

MSG_NEW_USER = "created user {name} (staff, no password yet): set one with `manage.py changepassword {name}`"
MSG_ASSIGNED = "{name} is in {role}"


class Command(BaseCommand):
    help = 'Create or update the groups "Recovery operators" and "Recovery viewers"; optionally assign users.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--operator",
            action="append",
            default=[],
            metavar="USERNAME",
            help="put this user in the operators",
        )
        parser.add_argument(
            "--viewer", action="append", default=[], metavar="USERNAME", help="put this user in the viewers"
        )

    def handle(self, *, operator: list[str], viewer: list[str], verbosity: int, **options: Any) -> None:
        if both := sorted(set(operator) & set(viewer)):
            raise CommandError(f"a user has one role: {', '.join(both)} named as operator and viewer")
        try:
            reports = roles_ensure()
        except RolesNotReady as exc:
            raise CommandError(str(exc), returncode=2) from None
        if verbosity >= 1:
            for report in reports:
                state = "created" if report.created else "up to date"
                self.stdout.write(f"{report.name} ({state}) may:")
                for codename, meaning in report.permissions:
                    self.stdout.write(f"  {codename:22} {meaning}")
        for role, names in ((OPERATORS, operator), (VIEWERS, viewer)):
            for name in names:
                _, created = role_user_assign(username=name, role=role)
                if created:
                    self.stdout.write(MSG_NEW_USER.format(name=name))
                self.stdout.write(MSG_ASSIGNED.format(name=name, role=role))
