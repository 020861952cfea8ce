"""Who may use the API: the admin's own permissions, nothing new to grant."""

from __future__ import annotations

from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

RUN_RECOVERY = "recovery.run_auto_recovery"  # the admin's recovery action and sweep button
VIEW_SETTINGS = "recovery.view_tradesettings"


class _HasPermission(BasePermission):
    codename = ""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.codename))


class CanRunRecovery(_HasPermission):
    codename = RUN_RECOVERY
    message = "You do not have permission to run auto-recovery."


class CanViewSettings(_HasPermission):
    codename = VIEW_SETTINGS
    message = "You do not have permission to view the auto-recovery settings."
