"""``storekeeper doctor``: check a home, its platform database, its services and stores; say what fixes each finding.

Each :class:`Finding` has a level (``error``: something is broken; ``warning``:
something will break or is unsafe; ``info``: worth knowing), a subject (``home``,
``platform``, a service's name, or ``APP/STORE``), a message and, when there is
one, the command that fixes it. The report is ``ok`` when no finding is an error.
"""

from __future__ import annotations

import stat
from dataclasses import asdict, dataclass, field
from typing import Any

from storekeeper import services, stores
from storekeeper.config import Config, load_config
from storekeeper.errors import StorekeeperError
from storekeeper.platform import Platform, open_platform

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass(frozen=True)
class Finding:
    """One thing the doctor found."""

    level: str
    subject: str
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    """Every finding, errors first."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == ERROR for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [f.to_dict() for f in self.findings]}

    def counts(self) -> dict[str, int]:
        """How many findings of each level."""
        return {level: sum(f.level == level for f in self.findings) for level in (ERROR, WARNING, INFO)}


_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def check(home: str | None = None, *, platform: Platform | None = None) -> Report:
    """Check the home, the platform database, each service and each store; never raises for what it finds.

    ``platform``: an open platform (the portal's) whose home is checked; else the home's is opened.
    """
    found: list[Finding] = []
    if platform is None:
        try:
            config = load_config(home)
        except StorekeeperError as err:
            return Report([Finding(ERROR, "home", err.message, err.hint)])
        found += _home(config)
        try:
            platform = open_platform(config)
        except StorekeeperError as err:
            found.append(Finding(ERROR, "platform", err.message, err.hint))
            return _report(found)
    else:
        found += _home(platform.config)
    found += _services(platform)
    found += _stores(platform)
    return _report(found)


def _report(found: list[Finding]) -> Report:
    return Report(sorted(found, key=lambda f: _ORDER.get(f.level, 3)))


def _home(config: Config) -> list[Finding]:
    """The home and its config file are readable by their owner only (the config file holds the secret key)."""
    found = []
    home = config.home
    if home.exists() and stat.S_IMODE(home.stat().st_mode) & 0o077:
        found.append(Finding(WARNING, "home", f"The home {home} can be read by other users.", f"chmod 700 {home}"))
    path = config.config_file
    if path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077:
        found.append(
            Finding(
                ERROR,
                "home",
                f"{path} holds the secret key and can be read by other users.",
                f"chmod 600 {path}",
            )
        )
    return found


def _services(platform: Platform) -> list[Finding]:
    found = []
    for svc in services.list_services(platform):
        try:
            report = services.test_service(platform, svc.name)
        except StorekeeperError as err:
            found.append(Finding(ERROR, svc.name, err.message, err.hint or f"storekeeper services test {svc.name}"))
            continue
        found.append(
            Finding(
                INFO,
                svc.name,
                f"reachable at {svc.host}:{svc.port}, PostgreSQL {report.get('server_version', 'unknown')}, "
                f"stores reached as {report.get('store_access', 'unknown')}, PostGIS {report.get('postgis_path')}",
            )
        )
        found += _privileges(svc.name, svc.username, report)
    return found


def _privileges(name: str, user: str, report: dict[str, Any]) -> list[Finding]:
    """What the service user may not do, and whether the pools fit in max_connections."""
    found = []
    if not report.get("can_create_database"):
        found.append(
            Finding(
                ERROR,
                name,
                f"user {user} may not create databases: no store can be made.",
                f"ALTER ROLE {user} CREATEDB",
            )
        )
    if report.get("store_access") == "service user":
        found.append(
            Finding(
                WARNING,
                name,
                f"user {user} may not create roles, so its stores are reached as {user} and are not isolated "
                "from each other.",
                f"ALTER ROLE {user} CREATEROLE; then storekeeper syncstores --all",
            )
        )
    supported = report.get("processes_supported")
    if supported is not None and supported < 2:
        found.append(
            Finding(
                WARNING,
                name,
                f"its max_connections ({report.get('max_connections')}) leaves room for {supported} portal "
                f"process(es) opening every pool ({report.get('pool_connections_per_process')} connections each).",
                f"storekeeper services update {name} --pool-size N  (or raise max_connections on the server)",
            )
        )
    return found


def _stores(platform: Platform) -> list[Finding]:
    found = []
    infos = stores.list_stores(platform)
    for s in infos:
        subject = f"{s.app}/{s.name}"
        if s.orphaned:
            found.append(
                Finding(
                    WARNING,
                    subject,
                    "its setting is no longer declared by the app.",
                    f"storekeeper apps remove {s.app}",
                )
            )
        elif s.service is None:
            continue  # an unassigned setting: apps list shows it
        elif s.exists is None:
            found.append(
                Finding(
                    ERROR,
                    subject,
                    f"its server (service {s.service}) could not be asked.",
                    f"storekeeper services test {s.service}",
                )
            )
        elif s.initialized and not s.exists:
            found.append(
                Finding(
                    ERROR,
                    subject,
                    f"recorded as made, but database {s.database} is missing on its server.",
                    f"storekeeper syncstores {s.app}",
                )
            )
        elif s.problem:
            found.append(Finding(ERROR, subject, s.problem, f"storekeeper syncstores {s.app} --database {s.name}"))
        elif not s.exists:
            found.append(Finding(INFO, subject, "not made yet.", f"storekeeper syncstores {s.app}"))
    for app in sorted({s.app for s in infos if not s.orphaned}):
        try:
            schema = stores.migration_status(platform, app)
        except StorekeeperError as err:
            found.append(Finding(ERROR, app, err.message, err.hint))
            continue
        for m in schema:
            subject = f"{m.app}/{m.store}"
            if m.problem:
                found.append(Finding(ERROR, subject, m.problem, m.hint))
            elif m.exists and m.pending:
                revisions = ", ".join(p.revision for p in m.pending)
                found.append(
                    Finding(
                        WARNING,
                        subject,
                        f"at revision {m.current or 'base'}, {len(m.pending)} migration(s) pending ({revisions}).",
                        f"storekeeper syncstores {m.app} --database {m.store}",
                    )
                )
    return found
