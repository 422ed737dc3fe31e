"""storekeeper.ports: real sockets on loopback, no mocks."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from storekeeper.cli.portal import check_port_free
from storekeeper.errors import StorekeeperError
from storekeeper.ports import bind_error, pick_free_port, port_is_free


@pytest.fixture
def listener() -> Iterator[int]:
    """Yield the port of a socket listening on 127.0.0.1 for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_picked_port_can_be_listened_on() -> None:
    port = pick_free_port("127.0.0.1")
    assert port_is_free("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_a_listening_port_is_not_free(listener: int) -> None:
    assert not port_is_free("127.0.0.1", listener)
    assert not port_is_free("*", listener), "all interfaces include the loopback listener"
    assert bind_error("127.0.0.1", listener) is not None


def test_a_port_lingering_after_a_closed_connection_is_free() -> None:
    """A stopped server's TIME_WAIT connections do not block the next one: only a listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL and uvicorn do
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end lingers in TIME_WAIT
    assert port_is_free("127.0.0.1", port)
    assert bind_error("127.0.0.1", port) is None


def test_pick_free_port_avoids_a_held_port(listener: int) -> None:
    assert pick_free_port("127.0.0.1") != listener


def test_the_portal_refuses_a_taken_port_with_the_fix(listener: int) -> None:
    with pytest.raises(StorekeeperError) as info:
        check_port_free("127.0.0.1", listener)
    assert f"Cannot serve the portal on 127.0.0.1:{listener}" in info.value.message
    assert "is a portal already running?" in info.value.message
    assert info.value.hint == f"stop the other server, or pick another port: --port {listener + 1}"


def test_the_portal_refuses_a_host_it_cannot_listen_on() -> None:
    """Not just a taken port: an address that is not this machine's is refused up front too."""
    with pytest.raises(StorekeeperError, match=r"Cannot serve the portal on 192\.0\.2\.1:8000"):
        check_port_free("192.0.2.1", 8000)  # TEST-NET-1: never a local address
