"""Whether a TCP port is free to listen on, and picking one that is.

Every place that needs a port goes through here: the local PostgreSQL server
(:mod:`storekeeper.pgserver`, on every address its ``listen_addresses`` stands
for), the local server's default port (:mod:`storekeeper.localdb`) and the
portal (``storekeeper start``, which refuses a taken port up front). The checks
bind a socket the way a server does (``SO_REUSEADDR``, so connections lingering
in TIME_WAIT do not count, only a listener does).

Example::

    from storekeeper.ports import pick_free_port, port_is_free

    port = 5432 if port_is_free("127.0.0.1", 5432) else pick_free_port("127.0.0.1")
"""

from __future__ import annotations

import errno
import socket
from typing import Any

__all__ = [
    "PICK_ATTEMPTS",
    "NoFreePortError",
    "SocketAddress",
    "bind_addresses",
    "bind_error",
    "pick_free_port",
    "port_is_free",
]

#: An address family and a socket address for it, as :func:`socket.getaddrinfo` returns them.
SocketAddress = tuple[int, tuple[Any, ...]]

#: How many kernel-chosen ports :func:`pick_free_port` tries before giving up.
PICK_ATTEMPTS = 50


class NoFreePortError(OSError):
    """No port was found that is free on every address a host stands for."""


def bind_addresses(host: str, port: int) -> list[SocketAddress]:
    """Return the (family, sockaddr) pairs a server listening on ``host`` binds.

    ``host`` is a comma-separated list, like PostgreSQL's ``listen_addresses``;
    ``*`` (or an empty item) means every interface. Names that do not resolve
    are left out.
    """
    targets: list[SocketAddress] = []
    for item in host.split(","):
        name: str | None = item.strip()
        if name in ("*", ""):
            name = None  # all interfaces, like the server
        try:
            infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror:
            continue
        targets += [(info[0], info[4]) for info in infos]
    return targets


def _try_bind(family: int, sockaddr: tuple[Any, ...]) -> OSError | None:
    """Bind a socket as a server would; return the error, or None when it bound."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so lingering TIME_WAIT
        # connections do not block them; only a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(sockaddr)
        except OSError as err:
            return err
    return None


def bind_error(host: str, port: int) -> OSError | None:
    """Return why a server could not listen on ``host``:``port``, or None when it could.

    Checks the one address ``host`` names (IPv6 when it holds a colon), the way
    uvicorn binds it; any error counts (taken, not a local address, a name that
    does not resolve, a privileged port).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _try_bind(family, (host, port))


def port_is_free(host: str, port: int) -> bool:
    """Return whether a server could listen on ``port`` at every address ``host`` stands for.

    ``host`` is read as by :func:`bind_addresses`. Only a listener counts as
    taking the port: an address this machine cannot bind at all (e.g. IPv6
    when it has none) is skipped, as PostgreSQL skips it.
    """
    for family, sockaddr in bind_addresses(host, port):
        err = _try_bind(family, sockaddr)
        if err is not None and err.errno == errno.EADDRINUSE:
            return False
    return True


def pick_free_port(host: str) -> int:
    """Return a port that is free on every address ``host`` stands for.

    The kernel chooses an unused port on the first address; it is kept when
    :func:`port_is_free` agrees for the others. Raises :class:`NoFreePortError`
    when none is found after a few tries.
    """
    addresses = bind_addresses(host, 0) or [(socket.AF_INET, ("127.0.0.1", 0))]
    family, sockaddr = addresses[0]
    for _ in range(PICK_ATTEMPTS):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(sockaddr)  # port 0: the kernel chooses an unused port
            port: int = sock.getsockname()[1]
        if port_is_free(host, port):
            return port
    raise NoFreePortError(errno.EADDRINUSE, f"Could not find a free TCP port on {host}.")
