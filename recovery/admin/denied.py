"""A 403 inside the admin's layout that names the permission the user lacks."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

TITLE = "Permission needed"


def permission_denied_response(request: HttpRequest, *, permission: str, reason: str) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": TITLE,
        "permission": permission,
        "reason": reason,
    }
    return TemplateResponse(request, "admin/recovery/permission_denied.html", context, status=403)
