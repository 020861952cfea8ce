"""POST a sweep, GET the settings and gates in force: the services of the command and the admin.

Every response is JSON. A real sweep goes through runs.sweep_run_recorded under the
command's named lock (heartbeat row, audit rows as `api:<username>`); a dry run goes
through services.sweep_run and writes nothing, as `auto_recover --dry-run` does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.schemas.openapi import AutoSchema
from rest_framework.views import APIView

from recovery import selectors
from recovery.api.errors import ERROR_RESPONSES, could_not_run_body
from recovery.api.permissions import CanRunRecovery, CanViewSettings
from recovery.api.serializers import SweepRequestSerializer
from recovery.api.throttles import ReadThrottle, SweepThrottle
from recovery.db.audit import ACTOR_MAX_LENGTH
from recovery.db.checks import trading_schema_assert
from recovery.db.routers import trading_alias
from recovery.exceptions import SchemaNotReady
from recovery.ops.runs import Outcome, RunReport, could_not_run_message, sweep_run_recorded
from recovery.services import sweep_run
from recovery.sweep.results import SweepResult

# The outcome of a real sweep, as an HTTP status. 200 and the sweep's JSON when it ran;
# the same JSON with 409 when the breaker opened (nothing changed) and 500 when an
# order could not be written (it stays NEW); 423 when another run holds the lock
# (nothing done, try again later); 503 when it could not run at all or a sweep-wide gate
# blocked it. A run stopped by its time budget is 200: the JSON says what it left.
HTTP_STATUS = {
    Outcome.OK: status.HTTP_200_OK,
    Outcome.BREAKER_OPEN: status.HTTP_409_CONFLICT,
    Outcome.FAILED: status.HTTP_500_INTERNAL_SERVER_ERROR,
    Outcome.LOCK_HELD: status.HTTP_423_LOCKED,
    Outcome.COULD_NOT_RUN: status.HTTP_503_SERVICE_UNAVAILABLE,
    Outcome.BLOCKED: status.HTTP_503_SERVICE_UNAVAILABLE,
    Outcome.OVER_BUDGET: status.HTTP_200_OK,
    Outcome.CONNECTION_LOST: status.HTTP_503_SERVICE_UNAVAILABLE,
}
SWEEP_RESPONSES = {
    "200": "the sweep ran (skips are normal); the same JSON object as auto_recover --json",
    "400": "bad input: field errors, nothing done",
    "401": "no or unknown token / session",
    "403": "no run_auto_recovery permission, or a session request without its CSRF token",
    "409": "the circuit breaker opened: nothing was changed (circuit_open: true)",
    "423": "another run holds the sweep's lock: nothing done ({lock_held: true, message})",
    "429": "rate limit: try again after Retry-After seconds",
    "500": "at least one order could not be written; it stays NEW (failed > 0)",
    "503": "could not run: database or schema ({could_not_run: true, message}); or a sweep-wide gate "
    "(the clock, the IB gateway, the bridge root) kept it from acting (the sweep's JSON, blocked_by and "
    "blocked say which and why): nothing was changed",
}


def api_actor(username: str) -> str:
    """Who the heartbeat and the audit rows name: `api:<username>`."""
    return f"api:{username}"[:ACTOR_MAX_LENGTH]


SETTINGS_RESPONSES = {
    "200": "settings (defaults filled in), settings_warnings, gates, and what a sweep now would do",
    "401": "no or unknown token / session",
    "403": "no view_tradesettings permission",
    "429": "rate limit: try again after Retry-After seconds",
    "503": "could not read: database or schema ({could_not_run: true, message})",
}


class OperationSchema(AutoSchema):
    """One named operation with its documented statuses (the bodies are described in the README)."""

    def __init__(self, *, operation_id: str, responses: dict[str, str]) -> None:
        super().__init__(tags=["recovery"])
        self.operation_id, self.responses = operation_id, responses

    def get_operation_id(self, path: str, method: str) -> str:
        return self.operation_id

    def get_responses(self, path: str, method: str) -> dict[str, Any]:
        return {code: {"description": text} for code, text in self.responses.items()}

    def map_field(self, field: serializers.Field) -> dict[str, Any]:
        # DRF maps only the exact BooleanField class to "boolean"; the strict one is one too.
        if isinstance(field, serializers.BooleanField):
            return {"type": "boolean"}
        return super().map_field(field)


class SweepView(APIView):
    """Run the auto-recovery sweep now, or a dry run of it."""

    permission_classes = [CanRunRecovery]
    throttle_classes = [SweepThrottle]
    schema = OperationSchema(
        operation_id="runRecoverySweep", responses={**ERROR_RESPONSES, **SWEEP_RESPONSES}
    )

    def get_serializer(self, *args: Any, **kwargs: Any) -> SweepRequestSerializer:  # for the schema
        return SweepRequestSerializer(*args, **kwargs)

    def post(self, request: Request) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = serializer.validated_data
        actor, now = api_actor(request.user.get_username()), timezone.now()
        sweep = {
            "limit": options["limit"],
            "order_ids": options.get("order_ids"),
            "confirmed_replacements": options.get("confirmed_replacements"),
        }
        if options["dry_run"]:
            return self._dry_run(now=now, actor=actor, **sweep)
        report = sweep_run_recorded(
            now=now,
            actor=actor,
            exclusive=True,
            check_schema=True,
            max_seconds=settings.RECOVERY_API_MAX_SECONDS,
            **sweep,
        )
        body = self._body(report)
        if report.result is not None and not report.result.connection_lost:
            try:  # what the run left; the run's own answer stands if the count fails
                body["stale_now"] = stale_now(report.result, now=timezone.now())
            except DatabaseError:
                body["stale_now"] = None
        return Response(body, status=HTTP_STATUS[report.outcome])

    def _dry_run(self, *, now: dt.datetime, actor: str, **sweep: Any) -> Response:
        try:
            trading_schema_assert(using=trading_alias())
            result = sweep_run(now=now, actor=actor, dry_run=True, **sweep)
            total = stale_now(result, now=now)
        except (SchemaNotReady, DatabaseError) as exc:
            return Response(could_not_run_body(could_not_run_message(exc)), status=503)
        return Response({**result.as_dict(), "stale_now": total}, status=status.HTTP_200_OK)

    @staticmethod
    def _body(report: RunReport) -> dict[str, Any]:
        if report.outcome is Outcome.LOCK_HELD:
            return {"lock_held": True, "message": report.message}  # as auto_recover --json says it
        if report.outcome is Outcome.COULD_NOT_RUN:
            return could_not_run_body(report.message)
        assert report.result is not None  # every other outcome comes with a result
        return report.result.as_dict()


class SettingsView(APIView):
    """The auto_recovery settings in force (defaults filled in, invalid keys reported) and the gates now."""

    permission_classes = [CanViewSettings]
    throttle_classes = [ReadThrottle]
    schema = OperationSchema(
        operation_id="getRecoverySettings", responses={**ERROR_RESPONSES, **SETTINGS_RESPONSES}
    )

    def get(self, request: Request) -> Response:
        try:
            trading_schema_assert(using=trading_alias())
            now = timezone.now()
            preview = sweep_run(now=now, actor=api_actor(request.user.get_username()), dry_run=True)
            total = stale_now(preview, now=now)
        except (SchemaNotReady, DatabaseError) as exc:
            return Response(could_not_run_body(could_not_run_message(exc)), status=503)
        return Response(settings_body(preview, stale_total=total))


def stale_now(result: SweepResult, *, now: dt.datetime) -> int:
    """How many orders are stale at `now`, exactly: a run decides only its first `limit` of them.

    After a real sweep, what it left; beside a dry run, the backlog it would start from.
    """
    return selectors.stale_order_total(now=now, timeout_seconds=result.settings.new_timeout_seconds)


def settings_body(preview: SweepResult, *, stale_total: int) -> dict[str, Any]:
    """The settings and gates a sweep started now would use, and what it would do."""
    data = preview.as_dict()
    keys = ("now", "settings", "settings_warnings", "gates", "circuit_open", "would_replace")
    return {
        **{key: data[key] for key in keys},
        "stale_now": stale_total,
        "would": {k: data[k] for k in ("scanned", "cancelled", "replaced", "skipped")},
    }
