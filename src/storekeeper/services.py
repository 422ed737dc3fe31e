"""The service registry: database servers that apps' settings are plugged into."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from storekeeper import audit
from storekeeper.backends import BACKENDS, ServiceSpec, get_backend
from storekeeper.backends.names import check_service_name
from storekeeper.backends.postgresql import new_password as pg_new_password
from storekeeper.errors import ServiceError
from storekeeper.platform import Platform
from storekeeper.platform.models import App, Service, Setting

DEFAULT_PORT = 5432
DEFAULT_POOL_SIZE = 5
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: Fields ``update_service`` accepts.
UPDATABLE = (
    "host",
    "port",
    "username",
    "password",
    "maintenance_db",
    "sslmode",
    "connect_timeout",
    "pool_size",
    "driver",
)


@dataclass(frozen=True)
class Credentials:
    """Connection details parsed from ``--connection`` or ``--url``."""

    username: str
    password: str | None
    host: str
    port: int
    database: str | None = None
    driver: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, host={self.host!r}, port={self.port})"


def parse_connection(text: str) -> Credentials:
    """Parse ``user[:password]@host[:port]``.

    The host part starts after the last ``@`` (a password may contain ``@``),
    the user ends at the first ``:``; percent-encoded characters are decoded.
    """
    if "@" not in text:
        raise ServiceError(
            f"Connection {_mask(text)!r} has no '@': expected user[:password]@host[:port].",
            hint="--connection postgres:PASSWORD@localhost:5432  (or leave the password out to be prompted)",
        )
    userinfo, hostport = text.rsplit("@", 1)
    user, sep, password = userinfo.partition(":")
    host, _, port_text = hostport.partition(":")
    if hostport.startswith("["):  # [IPv6]:port
        end = hostport.find("]")
        if end < 0 or hostport[end + 1 : end + 2] not in ("", ":"):
            raise ServiceError(
                f"Connection host {hostport!r} is not [IPv6 address] or [IPv6 address]:port.",
                hint="--connection postgres@[::1]:5432",
            )
        host, port_text = hostport[1:end], hostport[end + 2 :]
    if not user or not host:
        raise ServiceError(
            "Connection must name a user and a host: user[:password]@host[:port].",
            hint="--connection postgres@localhost:5432",
        )
    return Credentials(
        username=unquote(user),
        password=unquote(password) if sep else None,
        host=unquote(host),
        port=_port(port_text),
    )


def parse_url(text: str) -> Credentials:
    """Parse a ``postgresql[+driver]://user[:password]@host[:port][/db]`` URL."""
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number ("h:badport", "[::1")
        raise ServiceError(
            "--url is not a database URL (not shown: it may hold a password); "
            "check that its port, if any, is a number and an IPv6 host is in [brackets].",
            hint="--url postgresql://USER:PASSWORD@HOST:5432/postgres",
        ) from None
    if url.get_backend_name() not in BACKENDS:
        raise ServiceError(
            f'--url uses backend "{url.get_backend_name()}"; supported: {", ".join(BACKENDS)}.',
            hint="--url postgresql://USER:PASSWORD@HOST:5432/postgres",
        )
    if not url.username or not url.host:
        raise ServiceError("--url must name a user and a host.", hint="--url postgresql://USER@HOST:5432")
    return Credentials(
        username=url.username,
        password=url.password,
        host=url.host,
        port=url.port or DEFAULT_PORT,
        database=url.database,
        driver=url.get_driver_name() if "+" in url.drivername else None,
    )


def _port(text: str) -> int:
    if not text:
        return DEFAULT_PORT
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ServiceError(f"Port {text!r} is not a number from 1 to 65535.", hint="e.g. localhost:5432")
    return int(text)


def _mask(text: str) -> str:
    if "@" in text and ":" in text.rsplit("@", 1)[0]:
        user = text.split(":", 1)[0]
        return f"{user}:****@{text.rsplit('@', 1)[1]}"
    if ":" in text:  # "user:password" with the host forgotten: the rest may be a password
        return f"{text.split(':', 1)[0]}:****"
    return text


@dataclass(frozen=True)
class ServiceInfo:
    """What may be shown about a service: everything but the password."""

    name: str
    backend: str
    driver: str
    host: str
    port: int
    username: str
    has_password: bool
    maintenance_db: str
    sslmode: str | None
    connect_timeout: int
    pool_size: int
    assigned: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The service's URL with the password masked."""
        password = ":***" if self.has_password else ""
        return f"postgresql+{self.driver}://{self.username}{password}@{self.host}:{self.port}/{self.maintenance_db}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["url"] = self.url
        return data


def _assigned(session: Session, service_id: int) -> list[str]:
    rows = session.execute(
        select(App.package, Setting.name)
        .join(Setting.app)
        .where(Setting.service_id == service_id)
        .order_by(App.package, Setting.name)
    ).all()
    return [f"{package}/{name}" for package, name in rows]


def _info(session: Session, svc: Service) -> ServiceInfo:
    return ServiceInfo(
        name=svc.name,
        backend=svc.backend,
        driver=svc.driver,
        host=svc.host,
        port=svc.port,
        username=svc.username,
        has_password=svc.password_encrypted is not None,
        maintenance_db=svc.maintenance_db,
        sslmode=svc.sslmode,
        connect_timeout=svc.connect_timeout,
        pool_size=svc.pool_size,
        assigned=_assigned(session, svc.id),
    )


def _get(session: Session, name: str) -> Service:
    check_service_name(name)
    svc = session.scalar(select(Service).where(Service.name == name))
    if svc is None:
        raise ServiceError.not_found(name)
    return svc


#: One label of a hostname (RFC 1123): letters, digits and hyphens, 1 to 63, no hyphen at either end.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?", re.ASCII)
MAX_HOSTNAME = 253
HOST_HINT = (
    "a hostname such as db.example.com (labels of letters, digits and '-', 63 characters at most) or an IP address"
)


def check_host(host: str) -> str:
    """Return ``host`` when it is an IPv4 or IPv6 address or a hostname (RFC 1123); raise naming what is wrong."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    reason = _hostname_problem(host)
    if reason is None:
        return host
    shown = ascii(host[:70]) + ("..." if len(host) > 70 else "")
    raise ServiceError(
        f"Host {shown} is not a hostname or an IP address: {reason}.",
        hint=f"--host db.example.com  ({HOST_HINT})",
        status=422,
    )


def _hostname_problem(host: str) -> str | None:
    name = host[:-1] if host.endswith(".") else host  # a fully qualified name may end with a dot
    if not name:
        return "it is empty"
    if len(name) > MAX_HOSTNAME:
        return f"it has {len(name)} characters ({MAX_HOSTNAME} at most)"
    if name.startswith("[") or ":" in name:
        return "an IPv6 address must be given without [brackets] and be valid"
    labels = name.split(".")
    for label in labels:
        if not label:
            return "it has an empty label (two dots in a row, or a dot first)"
        if len(label) > 63:
            return f"its label {label[:20]}... has {len(label)} characters (63 at most)"
        if not _LABEL.fullmatch(label):
            return f"its label {label!a} may hold only letters, digits and '-', not first or last"
    if labels[-1].isdigit():
        return "it looks like an IPv4 address but is not one"
    return None


def _check_values(values: dict[str, Any]) -> None:
    if values.get("host") is not None:
        check_host(values["host"])
    if values.get("sslmode") is not None and values["sslmode"] not in SSLMODES:
        raise ServiceError(
            f"sslmode {values['sslmode']!r} is not one of {', '.join(SSLMODES)}.", hint="--sslmode require"
        )
    for key, low, high in (("port", 1, 65535), ("pool_size", 1, 1000), ("connect_timeout", 1, 3600)):
        if values.get(key) is not None and not low <= int(values[key]) <= high:
            raise ServiceError(
                f"{key} must be from {low} to {high}, not {values[key]}.", hint=f"--{key.replace('_', '-')} N"
            )
    if values.get("maintenance_db") is not None and not values["maintenance_db"]:
        raise ServiceError("The maintenance database name cannot be empty.", hint="--maintenance-db postgres")


def create_service(
    platform: Platform,
    *,
    name: str,
    host: str,
    username: str,
    password: str | None,
    port: int = DEFAULT_PORT,
    maintenance_db: str = "postgres",
    sslmode: str | None = None,
    connect_timeout: int = 10,
    pool_size: int = DEFAULT_POOL_SIZE,
    driver: str = "psycopg",
) -> ServiceInfo:
    """Register a persistent store service (a database server)."""
    check_service_name(name)
    values = {
        "host": host,
        "port": port,
        "sslmode": sslmode,
        "pool_size": pool_size,
        "connect_timeout": connect_timeout,
        "maintenance_db": maintenance_db,
    }
    _check_values(values)
    with platform.session() as session:
        if session.scalar(select(Service).where(Service.name == name)) is not None:
            raise ServiceError.exists(name)
        svc = Service(
            name=name,
            backend="postgresql",
            driver=driver,
            host=host,
            port=port,
            username=username,
            password_encrypted=platform.encrypt(password) if password is not None else None,
            maintenance_db=maintenance_db,
            sslmode=sslmode,
            connect_timeout=connect_timeout,
            pool_size=pool_size,
        )
        session.add(svc)
        session.flush()
        audit.record(session, "service.create", name, detail=f"{host}:{port} user {username}")
        return _info(session, svc)


def list_services(platform: Platform) -> list[ServiceInfo]:
    """Return every registered service."""
    with platform.session() as session:
        return [_info(session, s) for s in session.scalars(select(Service).order_by(Service.name))]


def get_service(platform: Platform, name: str) -> ServiceInfo:
    """Return one service by name."""
    with platform.session() as session:
        return _info(session, _get(session, name))


def update_service(platform: Platform, name: str, **changes: Any) -> ServiceInfo:
    """Change a service's connection details; cached engines everywhere are rebuilt."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ServiceError(
            f"Cannot update {', '.join(sorted(unknown))} of a service.", hint=f"updatable: {', '.join(UPDATABLE)}"
        )
    # None leaves a field as it is; an empty sslmode clears it (back to the driver's default).
    cleared = {k for k in ("sslmode",) if changes.get(k) == ""}
    changes = {k: v for k, v in changes.items() if v is not None and k not in cleared}
    _check_values(changes)
    with platform.session() as session:
        svc = _get(session, name)
        for key, value in changes.items():
            if key == "password":
                svc.password_encrypted = platform.encrypt(value)
            else:
                setattr(svc, key, value)
        for key in cleared:
            if getattr(svc, key) is not None:
                setattr(svc, key, None)
                changes[key] = None
        if changes:
            svc.version += 1
        audit.record(session, "service.update", name, detail=", ".join(sorted(changes)) or "no changes")
        info = _info(session, svc)
    from storekeeper import engines

    engines.invalidate_service(name)
    return info


def remove_service(platform: Platform, name: str, *, force: bool = False) -> list[str]:
    """Remove a service; refused while settings use it unless ``force`` (which unassigns them).

    Returns the settings that were unassigned. Stores on the server are left as they are.
    """
    with platform.session() as session:
        svc = _get(session, name)
        assigned = _assigned(session, svc.id)
        if assigned and not force:
            raise ServiceError.in_use(name, assigned)
        for setting in session.scalars(select(Setting).where(Setting.service_id == svc.id)):
            # The store (if any) stays on that server; this setting no longer has one.
            setting.service_id = None
            setting.generation += 1
            if setting.kind == "database":
                setting.state = "absent"
                setting.initialized_at = None
        session.delete(svc)
        audit.record(session, "service.remove", name, detail=f"unassigned: {', '.join(assigned)}" if assigned else "")
    from storekeeper import engines

    engines.invalidate_service(name)
    return assigned


def service_spec(platform: Platform, svc: Service) -> ServiceSpec:
    """Return the connection details of a service record, password decrypted."""
    return ServiceSpec(
        id=svc.id,
        name=svc.name,
        host=svc.host,
        port=svc.port,
        username=svc.username,
        password=platform.decrypt(svc.password_encrypted, service=svc.name) if svc.password_encrypted else None,
        maintenance_db=svc.maintenance_db,
        sslmode=svc.sslmode,
        connect_timeout=svc.connect_timeout,
        pool_size=svc.pool_size,
        driver=svc.driver,
        version=svc.version,
        pending_password=platform.decrypt(svc.password_pending, service=svc.name) if svc.password_pending else None,
        installation=platform.installation_id,
    )


def password_candidates(platform: Platform, service_id: int) -> list[str]:
    """Return the passwords a service user may have right now: the recorded one, then a pending one."""
    with platform.session() as session:
        svc = session.get(Service, service_id)
        if svc is None:
            return []
        spec = service_spec(platform, svc)
    return [p for p in (spec.password, spec.pending_password) if p]


def rotate_password(
    platform: Platform, name: str, *, on_rotated: Callable[[str | None, str], object] | None = None
) -> ServiceInfo:
    """Give a service's user a new password; processes holding the old one re-read it on their next login.

    The new password is recorded as pending before the server is told (as a
    SCRAM verifier), then promoted, so a crash at any point is finished by
    running the command again. ``on_rotated(old, new)`` lets the caller update
    another copy of the password (the local server's, in the config).
    """
    with platform.session() as session:
        svc = _get(session, name)
        spec = service_spec(platform, svc)
        backend_name = svc.backend
        # A rotation a crash left pending is finished with its own password, not a new one.
        new = spec.pending_password or pg_new_password()
        svc.password_pending = platform.encrypt(new)
    backend = get_backend(backend_name, spec)
    try:
        with backend.connect() as conn:
            backend.set_own_password(conn, new)
    except ServiceError as err:
        audit.record_now(platform, "service.rotate", name, "error", err.message)
        raise
    with platform.session() as session:
        svc = _get(session, name)
        svc.password_encrypted, svc.password_pending = platform.encrypt(new), None
        svc.version += 1
        audit.record(session, "service.rotate", name, detail="password rotated")
        info = _info(session, svc)
    from storekeeper import engines

    engines.invalidate_service(name)
    if on_rotated is not None:
        on_rotated(spec.password, new)
    return info


def service_specs(platform: Platform) -> list[ServiceSpec]:
    """Return the connection details of every registered service."""
    with platform.session() as session:
        return [service_spec(platform, svc) for svc in session.scalars(select(Service))]


def test_service(platform: Platform, name: str) -> dict[str, Any]:
    """Connect to a service and report version, privileges, PostGIS and connection headroom."""
    with platform.session() as session:
        svc = _get(session, name)
        spec = service_spec(platform, svc)
        backend_name = svc.backend
        pools = session.execute(
            select(func.count(Setting.id)).where(Setting.service_id == svc.id, Setting.kind.is_not(None))
        ).scalar_one()
    report = get_backend(backend_name, spec).server_report()
    report["service"] = name
    report["pool_size"] = spec.pool_size
    report["assigned_settings"] = pools
    # Each assigned setting gets one engine per process, each with up to pool_size connections.
    report["pool_connections_per_process"] = pools * spec.pool_size
    usable = report["max_connections"] - report["superuser_reserved_connections"]
    report["processes_supported"] = usable // report["pool_connections_per_process"] if pools else None
    return report


test_service.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def prepare_postgis(platform: Platform, name: str, *, superuser: str, password: str | None) -> dict[str, Any]:
    """Make the service's PostGIS template as ``superuser``, so its spatial stores need no superuser.

    For a service user that may not ``CREATE EXTENSION postgis`` (it is not a trusted
    extension). Idempotent. The superuser's password is used for this one connection:
    it is never stored, logged or audited.
    """
    with platform.session() as session:
        svc = _get(session, name)
        spec = service_spec(platform, svc)
        backend_name = svc.backend
    backend = get_backend(backend_name, spec)
    try:
        result = backend.prepare_postgis(superuser, password)
    except ServiceError as err:
        audit.record_now(platform, "service.prepare-postgis", name, "error", err.message)
        raise
    audit.record_now(platform, "service.prepare-postgis", name, "ok", f"{result['action']} as {superuser}")
    return result
