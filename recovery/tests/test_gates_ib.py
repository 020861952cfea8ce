"""The IB gateway probe, against real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from recovery.gates.ib import DETAIL_CONNECTED, DETAIL_MOCK, ib_probe

LOCALHOST = "127.0.0.1"
TIMEOUT = 1.0


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((LOCALHOST, 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    # A port that was free a moment ago and has nothing listening on it now.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def test_listening_gateway_is_reachable(listening_port: int) -> None:
    probe = ib_probe(host=LOCALHOST, port=listening_port, api_mode="ib", timeout=TIMEOUT)
    assert probe.reachable
    assert probe.detail == DETAIL_CONNECTED
    assert (probe.host, probe.port, probe.api_mode) == (LOCALHOST, listening_port, "ib")


def test_closed_port_is_unreachable(closed_port: int) -> None:
    probe = ib_probe(host=LOCALHOST, port=closed_port, api_mode="ib", timeout=TIMEOUT)
    assert not probe.reachable
    assert "refused" in probe.detail.lower()


@pytest.mark.parametrize("api_mode", ["mock", " MOCK ", "Mock"])
def test_mock_api_mode_is_reachable_without_a_gateway(closed_port: int, api_mode: str) -> None:
    probe = ib_probe(host=LOCALHOST, port=closed_port, api_mode=api_mode, timeout=TIMEOUT)
    assert probe.reachable
    assert probe.detail == DETAIL_MOCK
    assert probe.api_mode == api_mode


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_port_outside_the_valid_range_is_unreachable(port: int) -> None:
    probe = ib_probe(host=LOCALHOST, port=port, api_mode="ib", timeout=TIMEOUT)
    assert not probe.reachable
    assert probe.detail == f"port {port} is outside 1..65535"


def test_unresolvable_host_is_unreachable() -> None:
    probe = ib_probe(host="no-such-host.invalid", port=7497, api_mode="ib", timeout=0.5)
    assert not probe.reachable
    assert probe.detail


def test_host_name_the_resolver_cannot_encode_is_unreachable() -> None:
    probe = ib_probe(host="a" * 64 + ".example", port=7497, api_mode="ib", timeout=0.5)
    assert not probe.reachable
    assert "idna" in probe.detail
