"""One SQLAlchemy engine per store per process, cached for the hot path.

``AppBase.get_persistent_store_database`` reads :data:`DATABASES` directly:
once a handle is warm, a lookup is a dict access and a clock read, with no
platform-database query and no new engine.

Staleness bound: a handle is trusted for ``engines.revalidate_seconds``
(default 30 s). After that the next lookup asks the platform database whether
the store was dropped or refreshed, or its service's connection details
changed; only then is the engine replaced. Changes made in this process
(drop, refresh, service update) take effect at once; other processes see them
within that bound.

Pooled connections idle longer than ``engines.idle_timeout_seconds`` are
closed: the server ends them (``idle_session_timeout``, a little later than
our bound) and the pool never hands one out that has sat idle past the bound.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from storekeeper.backends import ServiceSpec

#: Extra seconds the server waits beyond our idle bound before ending a session.
_SERVER_IDLE_MARGIN = 30
#: A connect refused because the store's database is being swapped (``stores import``) is tried once
#: more after this pause; the swap's renames take milliseconds.
SWAP_RETRY_SECONDS = 0.5
#: What the server answers a connect that meets an import's swap: the old database refuses
#: connections, and for a moment the name is being renamed.
_SWAP_GAP = ("is not currently accepting connections", "does not exist")


@dataclass(slots=True, eq=False)
class Handle:
    """A cached engine for one store (or connection setting) of one app."""

    engine: Engine
    url: URL
    token: tuple[Any, ...]
    expires: float
    service: str
    _sessionmaker: sessionmaker[Session] | None = field(default=None)
    #: True for a handle lent by a test fixture (rollback mode): its "engine" is a
    #: Connection the fixture owns, so the cache must not dispose it.
    borrowed: bool = False

    def dispose(self) -> None:
        if not self.borrowed:
            self.engine.dispose()

    @property
    def sessionmaker(self) -> sessionmaker[Session]:
        sm = self._sessionmaker
        if sm is None:
            sm = self._sessionmaker = sessionmaker(bind=self.engine)
        return sm


#: (app package, setting name) -> handle; read without a lock on the hot path.
DATABASES: dict[tuple[str, str], Handle] = {}
CONNECTIONS: dict[tuple[str, str], Handle] = {}
_lock = threading.RLock()
#: Held while a handle is built or revalidated (the cold path), never on the hot path.
build_lock = threading.RLock()


def make_engine(
    spec: ServiceSpec,
    url: URL,
    *,
    application: str,
    idle_timeout: int,
    passwords: Callable[[], list[str]] | None = None,
) -> Engine:
    """Create a pooled engine for a store with the service's pool size.

    ``passwords`` (if given) returns the passwords the login may have right now;
    a connect that fails tries each other one once, so a password rotated by
    another process costs no failed request (see :mod:`storekeeper.stores.roles`).
    """
    connect_args: dict[str, Any] = {"connect_timeout": spec.connect_timeout, "application_name": application[:63]}
    if idle_timeout > 0:
        connect_args["options"] = f"-c idle_session_timeout={(idle_timeout + _SERVER_IDLE_MARGIN) * 1000}"
    engine = create_engine(
        url,
        pool_size=spec.pool_size,
        max_overflow=0,  # the pool size is a hard bound on this process's connections to the store
        pool_timeout=30,
        pool_recycle=3600,
        connect_args=connect_args,
    )
    if idle_timeout > 0:
        _close_idle(engine, idle_timeout)
    _ride_out_swaps(engine, passwords)
    return engine


def _ride_out_swaps(engine: Engine, passwords: Callable[[], list[str]] | None) -> None:
    """Survive a store's database being swapped under the engine (``stores import``).

    A pooled connection whose session the server ended (the swap ends them) is
    replaced at checkout, without a round trip: its socket has something to read
    (the server's goodbye), which an idle connection's never has. A connect that
    meets the swap's moment of refusal is tried once more.
    """

    @event.listens_for(engine, "checkout")
    def _drop_if_ended(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        try:
            readable, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
        except (OSError, ValueError, AttributeError):
            return
        if readable:
            raise exc.DisconnectionError("the server ended this pooled session (a store swap or a restart)")

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return _login(dialect, cargs, cparams, passwords)
        except dialect.loaded_dbapi.OperationalError as err:
            if not any(gap in str(err) for gap in _SWAP_GAP):
                raise
        time.sleep(SWAP_RETRY_SECONDS)
        return _login(dialect, cargs, cparams, passwords)


def _login(dialect: Any, cargs: Any, cparams: dict[str, Any], passwords: Callable[[], list[str]] | None) -> Any:
    """Connect; when refused and ``passwords`` is given, try each other password the login may have once."""
    if passwords is None:
        return dialect.connect(*cargs, **cparams)
    try:
        return dialect.connect(*cargs, **cparams)
    except dialect.loaded_dbapi.OperationalError as first:
        tried = cparams.get("password")
        for candidate in passwords():
            if candidate and candidate != tried:
                try:
                    connection = dialect.connect(*cargs, **{**cparams, "password": candidate})
                except dialect.loaded_dbapi.OperationalError:
                    continue
                cparams["password"] = candidate  # the pool's later connects use it too
                return connection
        raise first


def _close_idle(engine: Engine, idle_timeout: int) -> None:
    @event.listens_for(engine, "checkin")
    def _mark_idle(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _drop_if_idle_too_long(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since > idle_timeout:
            # The server may already have ended this session; have the pool open a new one.
            raise exc.DisconnectionError("idle connection past engines.idle_timeout_seconds")


def install(cache: dict[tuple[str, str], Handle], key: tuple[str, str], handle: Handle) -> Handle:
    """Put a handle in the cache, disposing the one it replaces."""
    with _lock:
        old = cache.get(key)
        cache[key] = handle
    if old is not None and old.engine is not handle.engine:
        old.dispose()
    return handle


def invalidate(package: str, name: str | None = None) -> None:
    """Forget (and dispose) this process's engines for an app's store, or all of the app's."""
    with _lock:
        doomed = [
            (cache, key)
            for cache in (DATABASES, CONNECTIONS)
            for key in cache
            if key[0] == package and (name is None or key[1] == name)
        ]
        handles = [cache.pop(key) for cache, key in doomed]
    for handle in handles:
        handle.dispose()


def invalidate_service(service: str) -> None:
    """Forget this process's engines that use a service (after its details changed)."""
    with _lock:
        doomed = [
            (cache, key) for cache in (DATABASES, CONNECTIONS) for key, h in cache.items() if h.service == service
        ]
        handles = [cache.pop(key) for cache, key in doomed]
    for handle in handles:
        handle.dispose()


def clear() -> None:
    """Dispose every cached engine (tests, and processes that change their home)."""
    with _lock:
        handles = list(DATABASES.values()) + list(CONNECTIONS.values())
        DATABASES.clear()
        CONNECTIONS.clear()
    for handle in handles:
        handle.dispose()


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds
