"""The client's address for django-axes' per-user-and-IP login lockout."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

# Set by the proxy from the connection it accepted (deploy/nginx-tradeops.conf), so a
# client cannot choose it; X-Forwarded-For can be prefilled by the client and is not read.
REAL_IP_HEADER = "HTTP_X_REAL_IP"


def client_ip(request: HttpRequest) -> str | None:
    """X-Real-IP behind the TLS proxy (every client there comes from 127.0.0.1), else the socket's."""
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get(REAL_IP_HEADER, "").strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")
