"""JSON bodies, and small ones: DRF's own JSON parser reads a body of any size."""

from __future__ import annotations

import io
from typing import IO, Any

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser

# A sweep request is a few keys and at most 500 ids (a few KiB); nginx refuses above 1 MiB.
MAX_BODY_BYTES = 64 * 1024
MSG_TOO_LARGE = "the request body is over {limit} bytes"


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = MSG_TOO_LARGE.format(limit=MAX_BODY_BYTES)
    default_code = "body_too_large"


class BoundedJSONParser(JSONParser):
    """JSON read up to MAX_BODY_BYTES; one byte more is a 413 before anything is parsed."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        body = stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge()
        return super().parse(io.BytesIO(body), media_type, parser_context)
