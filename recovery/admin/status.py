"""The admin's "Auto-recovery status" page: is the sweep alive, is now a safe moment."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from recovery.audit import admin_actor
from recovery.models import TradeOrder
from recovery.status import recovery_status_get

PERMISSION = "recovery.view_tradeorder"


def recovery_status_view(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    status = recovery_status_get(now=timezone.now(), actor=admin_actor(request.user.get_username()))
    context = {
        **admin.site.each_context(request),
        "title": "Auto-recovery status",
        "opts": TradeOrder._meta,
        "status": status,
        "report": status.preview.as_dict(),
    }
    return TemplateResponse(request, "admin/recovery/status.html", context)
