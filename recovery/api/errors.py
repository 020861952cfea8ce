"""Every error of the API is JSON with a status the README's table lists.

DRF answers its own errors (400, 401, 403, 405, 406, 415, 429) as JSON. Three more are made
so here: a database that cannot be reached, whichever it is (the token check reads Django's
database before any view runs), is 503 with the body of a run that could not run; a body
over the parser's limit is 413 (recovery/api/parsers.py); and anything Django itself
answers under /api/ (a 404, a 500 after an unexpected exception, which Django logs with
its traceback) keeps its status with a JSON body instead of an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from recovery.db.errors import failed_databases
from recovery.exceptions import error_line

logger = logging.getLogger("recovery.api")

API_PREFIX = "/api/"
MSG_DATABASE_DOWN = "could not run: {databases} cannot be reached: {error}"


# The statuses every operation may answer besides its own, for the OpenAPI schema.
ERROR_RESPONSES = {
    "404": "no such path under /api/ ({detail})",
    "405": "a method this path does not take ({detail})",
    "406": "an Accept header that does not take JSON ({detail})",
    "413": "a body over 64 KiB ({detail}): nothing read, nothing done",
    "415": "a body that is not application/json ({detail}): nothing done",
    "500": "an unexpected error ({detail}); its traceback is in the server's log",
    "503": "a database cannot be reached, Django's or the trading one ({could_not_run: true, message})",
}


def could_not_run_body(message: str) -> dict[str, Any]:
    return {"could_not_run": True, "message": message}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, and a database that cannot be reached as 503 naming which one."""
    if isinstance(exc, DatabaseError):
        message = MSG_DATABASE_DOWN.format(databases=failed_databases(), error=error_line(exc))
        logger.error("API %s: %s", context["request"].path, message)
        return Response(could_not_run_body(message), status=status.HTTP_503_SERVICE_UNAVAILABLE)
    return exception_handler(exc, context)


class ApiJsonErrorsMiddleware:
    """Under /api/, an error Django answered with a page (404, 500, 400) becomes JSON."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            request.path.startswith(API_PREFIX)
            and response.status_code >= 400
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            converted = JsonResponse({"detail": response.reason_phrase}, status=response.status_code)
            # Django logged the page it made (a 500 with its traceback); not the JSON again.
            converted._has_been_logged = getattr(response, "_has_been_logged", False)
            return converted
        return response
