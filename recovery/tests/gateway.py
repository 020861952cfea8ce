"""The tests' stand-in for the IB gateway: one LoopbackGateway per test process.

The sweep probes the gateway with a TCP connect (rule 2) and re-places only with
ib_settings.api_mode 'ib' (rule 10b), so tests that expect a replacement need a gateway
that answers. It listens for the process's lifetime; subprocesses a test starts reach it
too while the test runs.
"""

from __future__ import annotations

import threading

from recovery.demo import LoopbackGateway

_GATEWAY: LoopbackGateway | None = None
_LOCK = threading.Lock()


def gateway_port() -> int:
    """The port of this process's stand-in gateway (started on first use)."""
    global _GATEWAY
    with _LOCK:
        if _GATEWAY is None:
            _GATEWAY = LoopbackGateway()
        return _GATEWAY.port
