"""Is the IB gateway reachable? A TCP connect to ib_settings host:port (rule 2)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

MOCK_API_MODE = "mock"
PORT_MIN, PORT_MAX = 1, 65535
DETAIL_MOCK = "mock api_mode"
DETAIL_CONNECTED = "connected"
DETAIL_BAD_PORT = "port {port} is outside 1..65535"
DETAIL_MAX_CHARS = 200


@dataclass(frozen=True)
class IbProbe:
    reachable: bool
    host: str
    port: int
    api_mode: str
    detail: str


def ib_probe(*, host: str, port: int, api_mode: str, timeout: float) -> IbProbe:
    """Connect and close at once; the probe never raises for a bad or absent gateway."""
    if api_mode.strip().lower() == MOCK_API_MODE:
        # The backend's mock API needs no gateway.
        return IbProbe(reachable=True, host=host, port=port, api_mode=api_mode, detail=DETAIL_MOCK)
    if not PORT_MIN <= port <= PORT_MAX:
        # create_connection would raise OverflowError, not OSError, for these.
        detail = DETAIL_BAD_PORT.format(port=port)
        return IbProbe(reachable=False, host=host, port=port, api_mode=api_mode, detail=detail)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    # UnicodeError: a host name the IDNA codec rejects (a label over 63 characters).
    except (OSError, UnicodeError) as error:
        detail = (str(error) or type(error).__name__)[:DETAIL_MAX_CHARS]
        return IbProbe(reachable=False, host=host, port=port, api_mode=api_mode, detail=detail)
    return IbProbe(reachable=True, host=host, port=port, api_mode=api_mode, detail=DETAIL_CONNECTED)
