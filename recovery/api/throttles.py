"""Rate limits per user, read from the settings at request time (RECOVERY_API_*_RATE)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import UserRateThrottle


class SweepThrottle(UserRateThrottle):
    scope = "recovery_sweep"

    def get_rate(self) -> str:
        return settings.RECOVERY_API_SWEEP_RATE


class ReadThrottle(UserRateThrottle):
    scope = "recovery_read"

    def get_rate(self) -> str:
        return settings.RECOVERY_API_READ_RATE
