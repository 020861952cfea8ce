"""Public endpoints (the sweep's health for uptime checkers) and the 403 handler."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from recovery.admin.denied import permission_denied_response
from recovery.ops.health import health_get


@require_safe
@never_cache
def recovery_health(request: HttpRequest) -> JsonResponse:
    """200 when the last auto_recover run is recent and ended well and no replacement is an
    incident, else 503 (status "incident" for those; no order ids in the body)."""
    health = health_get(now=timezone.now(), max_age_seconds=settings.RECOVERY_HEALTH_MAX_AGE_SECONDS)
    body = {"status": health.status, "age_seconds": health.age_seconds}
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
