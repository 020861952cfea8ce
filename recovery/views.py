"""Public endpoints (the sweep's health for uptime checkers), the 403 handler, the login lockout page."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from recovery.admin.denied import permission_denied_response
from recovery.ops.health import health_get


@require_safe
@never_cache
def recovery_health(request: HttpRequest) -> JsonResponse:
    """200 when the last auto_recover run is recent and ended well (or has been blocked, had
    the breaker open or ran over budget for at most RECOVERY_HEALTH_DEGRADED_MINUTES) and no
    replacement is an incident, else 503 (status "incident" for those). The body names no
    order and no path: the status, the last run's age and outcome, how long it has been so."""
    health = health_get(now=timezone.now(), max_age_seconds=settings.RECOVERY_HEALTH_MAX_AGE_SECONDS)
    body = {
        "status": health.status,
        "age_seconds": health.age_seconds,
        "last_outcome": health.last_outcome,
        "blocked_by": health.blocked_by,
        "degraded_seconds": health.degraded_seconds,
    }
    return JsonResponse(body, status=200 if health.exit_code == 0 else 503)


# Admin URL names end in the view; the permission each one needs, as Django's admin checks it.
_ADMIN_VIEW_PERMISSION = {
    "changelist": "view",
    "change": "change",
    "add": "add",
    "delete": "delete",
    "history": "view",
}


def _permission_needed(request: HttpRequest) -> str:
    """The permission a refused admin page needs, read from its URL name (app_model_view)."""
    match = request.resolver_match
    name = match.url_name if match is not None else ""
    for suffix, verb in _ADMIN_VIEW_PERMISSION.items():
        if name and name.endswith(f"_{suffix}") and name.count("_") >= 2:
            app, model = name[: -len(suffix) - 1].split("_", 1)
            return f"{app}.{verb}_{model}"
    return ""


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A 403 inside the admin's layout for staff, naming the permission; Django's plain one else."""
    if (
        not request.path.startswith("/admin/")
        or not request.user.is_authenticated
        or not request.user.is_staff
    ):
        return defaults.permission_denied(request, exception)
    reason = str(exception) or "Your account may not open this page."
    needed = _permission_needed(request) or "a permission this page checks"
    return permission_denied_response(request, permission=needed, reason=reason)


LOCKOUT_TITLE = "Login locked"


def _minutes_words(seconds: float) -> str:
    """ "1 minute", "27 minutes", "3 hours": rounded up, never "0 minutes"."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{math.ceil(minutes / 60)} hours"


def _lockout_ends(request: HttpRequest, username: str, cool_off: dt.timedelta) -> dt.datetime:
    """When this username's lockout from this address ends: its last failure + the cool-off.

    A failed try while locked counts too (django-axes' AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT,
    on by default): the lockout starts again from it.
    """
    last = (
        AccessAttempt.objects.filter(username=username, ip_address=getattr(request, "axes_ip_address", None))
        .order_by("-attempt_time")
        .values_list("attempt_time", flat=True)
        .first()
    )
    return (last or timezone.now()) + cool_off


def login_lockout(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE): a 429 page in the admin's layout
    that says how long the lockout lasts and how an administrator lifts it."""
    username = get_client_username(request, credentials) or ""
    cool_off = get_cool_off(request) or dt.timedelta(0)
    ends = _lockout_ends(request, username, cool_off)
    context = {
        **admin.site.each_context(request),
        "title": LOCKOUT_TITLE,
        "username": username,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off": _minutes_words(cool_off.total_seconds()),
        "remaining": _minutes_words((ends - timezone.now()).total_seconds()),
        "ends": ends,
    }
    # Rendered here: axes' middleware hands it on as a finished response.
    return TemplateResponse(request, "admin/recovery/lockout.html", context, status=429).render()
