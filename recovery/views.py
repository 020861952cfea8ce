"""Public endpoints: the health of the sweep for uptime checkers (no login, nothing sensitive)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from recovery.health import health_get


@require_safe
@never_cache
def recovery_health(request: HttpRequest) -> JsonResponse:
    """200 when the last auto_recover run is recent and ended well, else 503."""
    health = health_get(now=timezone.now(), max_age_seconds=settings.RECOVERY_HEALTH_MAX_AGE_SECONDS)
    body = {"status": health.status, "age_seconds": health.age_seconds}
    return JsonResponse(body, status=200 if health.exit_code == 0 else 503)
