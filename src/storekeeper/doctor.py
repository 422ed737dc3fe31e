"""``storekeeper doctor``: check a home, its platform database, services and stores; say what fixes each finding.

Every check reads and changes nothing. A finding names its subject (``home``,
``platform``, ``service NAME``, ``APP`` or ``APP/STORE``), says what is wrong in
a sentence and gives the command that fixes it. Errors are what stops apps
working or puts data at risk; warnings are what an operator should look at;
info lines say what was found healthy.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from storekeeper import apps as apps_mod
from storekeeper import discovery
from storekeeper.backends import get_backend
from storekeeper.config import CONFIG_FILE, Config, load_config
from storekeeper.errors import StorekeeperError
from storekeeper.platform import Platform, db, open_platform
from storekeeper.platform.models import DATABASE, Service
from storekeeper.services import list_services, service_spec, test_service
from storekeeper.stores import list_stores, migration_status
from storekeeper.stores.model import StoreInfo

ERROR, WARNING, INFO = "error", "warning", "info"
LEVELS = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class Finding:
    """One thing ``doctor`` found: its level, what it is about, what is wrong, and the command that fixes it."""

    level: str
    subject: str
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    """Every finding, errors first; ``ok`` when none is an error."""

    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not any(f.level == ERROR for f in self.findings)

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [f.to_dict() for f in self.findings]}


def run(config: Config | None = None, *, platform: Platform | None = None) -> Report:
    """Run every check; a check that cannot run is itself a finding, never an exception."""
    findings: list[Finding] = []
    if config is None:
        try:
            config = load_config()
        except StorekeeperError as err:
            return Report([Finding(ERROR, "home", err.message, err.hint)])
    findings += check_home(config)
    own = platform is None
    if platform is None:
        try:
            platform = open_platform(config, check=False)
        except StorekeeperError as err:
            findings.append(Finding(ERROR, "platform", err.message, err.hint))
            return _sorted(findings)
    try:
        platform_findings = check_platform(platform)
        findings += platform_findings
        if not any(f.level == ERROR for f in platform_findings):
            secrets = check_secrets(platform)
            findings += secrets
            if not secrets:  # every later check needs the services' passwords
                findings += check_services(platform)
                findings += _guard("apps", lambda: check_apps_and_stores(platform))
    finally:
        if own:
            platform.close()
    return _sorted(findings)


def _sorted(findings: list[Finding]) -> Report:
    return Report(sorted(findings, key=lambda f: LEVELS.index(f.level)))


def _guard(subject: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    """Run one check; a failure to check is an error finding with its hint."""
    try:
        return check()
    except StorekeeperError as err:
        return [Finding(ERROR, subject, err.message, err.hint)]


# -- the home ----------------------------------------------------------------------------


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def check_home(config: Config) -> list[Finding]:
    """The home directory and its config file: present, and private (the file holds the secret key)."""
    home = Path(config.home)
    findings: list[Finding] = []
    mode = _mode(home)
    if mode is None:
        return [Finding(ERROR, "home", f"The home {home} does not exist.", "storekeeper quickstart")]
    if mode & 0o077:
        findings.append(
            Finding(
                WARNING,
                "home",
                f"The home {home} is open to other users (mode {mode:o}); it holds the platform database and keys.",
                f"chmod 700 {home}",
            )
        )
    config_file = home / CONFIG_FILE
    file_mode = _mode(config_file)
    if file_mode is None:
        findings.append(
            Finding(
                WARNING,
                "home",
                f"There is no {CONFIG_FILE} in {home}: settings come from the environment and defaults only.",
                "storekeeper quickstart",
            )
        )
    elif file_mode & 0o077:
        findings.append(
            Finding(
                ERROR,
                "home",
                f"{config_file} is readable by other users (mode {file_mode:o}) and holds the secret key "
                "that decrypts every stored password.",
                f"chmod 600 {config_file}; then storekeeper settings rotate-secret-key",
            )
        )
    elif not os.access(config_file, os.R_OK):
        findings.append(Finding(ERROR, "home", f"{config_file} cannot be read by this user.", f"ls -l {config_file}"))
    if not findings:
        findings.append(Finding(INFO, "home", f"{home}: private, config file readable by its owner only."))
    return findings


# -- the platform database ------------------------------------------------------------------


def check_platform(platform: Platform) -> list[Finding]:
    """The platform database: reachable and migrated to this version's head."""
    where = platform.engine.url.render_as_string(hide_password=True)
    try:
        revision = db.current_revision(platform.engine)
    except StorekeeperError as err:
        return [Finding(ERROR, "platform", err.message, err.hint)]
    if revision is None:
        return [
            Finding(ERROR, "platform", f"The platform database ({where}) has no schema.", "storekeeper db configure")
        ]
    if revision != db.HEAD_REVISION:
        return [
            Finding(
                ERROR,
                "platform",
                f"The platform database is at migration {revision}; this storekeeper needs {db.HEAD_REVISION}.",
                "storekeeper db upgrade",
            )
        ]
    return [
        Finding(INFO, "platform", f"{where} at migration {revision} (head); installation {platform.installation_id}.")
    ]


def check_secrets(platform: Platform) -> list[Finding]:
    """Every stored service password decrypts with the secret key."""
    findings: list[Finding] = []
    with platform.session() as session:
        for svc in session.query(Service).order_by(Service.name):
            try:
                service_spec(platform, svc)
            except StorekeeperError as err:
                findings.append(Finding(ERROR, "home", err.message, err.hint))
    return findings


# -- services -------------------------------------------------------------------------------


def check_services(platform: Platform) -> list[Finding]:
    """Each service: reachable, its privileges and the model they give, PostGIS, connection headroom."""
    findings: list[Finding] = []
    spatial_assigned = _spatial_services(platform)
    for svc in list_services(platform):
        findings += _guard(f"service {svc.name}", partial(_check_service, platform, svc.name, spatial_assigned))
    return findings


def _spatial_services(platform: Platform) -> set[str]:
    from storekeeper.platform.models import Setting

    with platform.session() as session:
        rows = session.query(Service.name).join(Setting, Setting.service_id == Service.id)
        return {name for (name,) in rows.filter(Setting.kind == DATABASE, Setting.spatial.is_(True))}


def _check_service(platform: Platform, name: str, spatial_assigned: set[str]) -> list[Finding]:
    subject = f"service {name}"
    report = test_service(platform, name)
    findings = [
        Finding(
            INFO,
            subject,
            f"PostgreSQL {report['server_version']}; stores reached as {report['store_access']}; "
            f"PostGIS: {report['postgis_path']}; {report['connections_in_use']} of {report['max_connections']} "
            "connections in use.",
        )
    ]
    if not report["can_create_database"]:
        findings.append(
            Finding(
                ERROR,
                subject,
                "The service user may not create databases, so no store can be made.",
                f'ALTER ROLE "{report.get("username", "USER")}" CREATEDB (on the server); then '
                f"storekeeper services test {name}",
            )
        )
    if not report["can_create_role"]:
        findings.append(
            Finding(
                WARNING,
                subject,
                "The service user may not create roles: every store is reached as the service user, so one "
                "app's SQL injection reaches every store on this service.",
                f"grant CREATEROLE to the service user on the server; then storekeeper syncstores --all "
                f"(check with storekeeper services test {name})",
            )
        )
    if report["superuser"]:
        findings.append(
            Finding(
                WARNING,
                subject,
                "The service user is a SUPERUSER; only CREATEDB and CREATEROLE are needed "
                "(and a prepared PostGIS template for spatial stores).",
                f"storekeeper services prepare-postgis {name} (once), then switch to a user with CREATEDB "
                f"CREATEROLE: storekeeper services update {name} --username USER --password",
            )
        )
    if name in spatial_assigned and report["postgis_path"] == "none":
        findings.append(
            Finding(
                ERROR,
                subject,
                "Spatial stores are assigned to this service, but it cannot give them PostGIS.",
                report.get("postgis_hint") or f"storekeeper services prepare-postgis {name}",
            )
        )
    per_process = report.get("pool_connections_per_process") or 0
    supported = report.get("processes_supported")
    if per_process and supported is not None and supported < 2:
        findings.append(
            Finding(
                WARNING,
                subject,
                f"The pools of the {report['assigned_settings']} assigned settings may open {per_process} connections "
                f"per process; the server allows {report['max_connections']} in all, enough for {supported} process(es).",
                f"storekeeper services update {name} --pool-size N (smaller), or raise max_connections on the server",
            )
        )
    return findings


# -- apps and stores --------------------------------------------------------------------------


def check_apps_and_stores(platform: Platform) -> list[Finding]:
    """Apps that fail to load, orphans, unassigned required settings, and each store as its server sees it."""
    findings: list[Finding] = []
    problems = discovery.discover(platform)
    for problem in problems:
        findings.append(
            Finding(ERROR, problem.entry_point, problem.message.split("\n")[0], "fix the app package, or uninstall it")
        )
    infos, _ = apps_mod.list_apps(platform)
    for app in infos:
        if not app.installed:
            findings.append(
                Finding(
                    WARNING,
                    app.package,
                    "The app is no longer installed; its records (and any stores) are kept.",
                    f"storekeeper apps remove {app.package} (add --drop-stores to drop its stores)",
                )
            )
            continue
        for s in app.settings:
            subject = f"{app.package}/{s.name}"
            if s.orphaned and not s.dynamic:
                findings.append(
                    Finding(
                        WARNING,
                        subject,
                        "The setting is no longer declared by the app; its record (and store) are kept.",
                        f"storekeeper app-settings reset {app.package} {s.name}",
                    )
                )
            elif s.required and not s.dynamic and s.service is None:
                findings.append(
                    Finding(
                        WARNING,
                        subject,
                        "A required setting has no service: the app cannot use it.",
                        f"storekeeper app-settings set {app.package} {s.name} SERVICE  (see: storekeeper services list)",
                    )
                )
    findings += _guard("stores", lambda: _check_stores(platform))
    findings += _guard("imports", lambda: check_import_leftovers(platform))
    return findings


def check_import_leftovers(platform: Platform) -> list[Finding]:
    """Databases a cut-short import left (restoring, previous) or ``--keep-previous`` kept, on every service."""
    from storekeeper.stores import backups

    findings: list[Finding] = []
    with platform.session() as session:
        specs = [service_spec(platform, svc) for svc in session.query(Service)]
    for spec in specs:
        try:
            backend = get_backend("postgresql", spec)
            with backend.connect() as conn:
                found = backups.all_leftovers(backend, conn)
        except (StorekeeperError, psycopg.Error):
            continue  # the service's own finding says it cannot be reached
        for owner, left in found:
            app, _, store = owner.partition("/")
            if left.state == backups.KEPT:
                findings.append(
                    Finding(
                        INFO,
                        owner,
                        f"Database {left.database} on {spec.where} holds the data an import replaced (--keep-previous).",
                        f'drop it on the server when it is no longer needed: DROP DATABASE "{left.database}"',
                    )
                )
            else:
                findings.append(
                    Finding(
                        WARNING,
                        owner,
                        f"Database {left.database} on {spec.where} was left by an import that was cut short "
                        f"({left.state}); the store itself is intact.",
                        f"storekeeper syncstores {app} --database {store}  (drops it)",
                    )
                )
    return findings


def _check_stores(platform: Platform) -> list[Finding]:
    stores = [s for s in list_stores(platform, discover=False) if s.service is not None]
    owners = _owners(platform, stores)
    findings = [f for s in stores for f in _check_store(s, owners.get((s.service or "", s.database)))]
    for package in sorted({s.app for s in stores if not s.orphaned}):
        findings += _guard(package, partial(_check_migrations, platform, package))
    return findings


def _check_migrations(platform: Platform, package: str) -> list[Finding]:
    """Each of an app's stores that declare migrations: at head, or what is pending, or why it cannot migrate."""
    findings: list[Finding] = []
    for m in migration_status(platform, package):
        subject = f"{m.app}/{m.store}"
        if m.problem:
            findings.append(Finding(ERROR, subject, m.problem[:1].upper() + m.problem[1:], m.hint))
        elif m.exists and m.pending:
            revisions = ", ".join(p.revision for p in m.pending)
            findings.append(
                Finding(
                    WARNING,
                    subject,
                    f"At revision {m.current or 'base'}; {len(m.pending)} migration(s) pending ({revisions}).",
                    f"storekeeper syncstores {m.app} --database {m.store}",
                )
            )
        elif m.exists:
            findings.append(Finding(INFO, subject, f"At its migrations' head ({m.head})."))
    return findings


def _owners(platform: Platform, stores: Iterable[StoreInfo]) -> dict[tuple[str, str], tuple[str | None, bool]]:
    """Ask each service who owns each store's database and whether its role exists: (owner, role exists)."""
    wanted: dict[str, list[str]] = {}
    for s in stores:
        if s.exists:
            wanted.setdefault(s.service or "", []).append(s.database)
    found: dict[tuple[str, str], tuple[str | None, bool]] = {}
    with platform.session() as session:
        specs = {svc.name: service_spec(platform, svc) for svc in session.query(Service) if svc.name in wanted}
    for service, names in wanted.items():
        try:
            with get_backend("postgresql", specs[service]).connect() as conn:
                rows = conn.execute(
                    "SELECT d.datname, pg_get_userbyid(d.datdba), "
                    "EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = d.datname) "
                    "FROM pg_database d WHERE d.datname = ANY(%s)",
                    (names,),
                ).fetchall()
        except (StorekeeperError, psycopg.Error):
            continue  # the service's own finding says it cannot be reached
        for dbname, owner, role_exists in rows:
            found[(service, dbname)] = (owner, bool(role_exists))
    return found


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _split_problem(problem: str | None, state: str, sync: str) -> tuple[str, str | None]:
    """Split a store's readiness problem ("why: the command") into a sentence and its fix."""
    if not problem:
        return f"The store is not ready (state {state}).", sync
    at = problem.find("storekeeper ")
    message = (problem[:at] if at > 0 else problem).rstrip(" :,")
    fix = problem[at:] if at >= 0 else None
    if at > 0 and message.endswith((" then", " fix it")):
        fix = f"{message.rsplit(':', 1)[-1].strip()} {fix}" if ":" in message else fix
        message = message.rsplit(":", 1)[0] if ":" in message else message
    return message[:1].upper() + message[1:] + ".", fix


def _check_store(s: StoreInfo, ownership: tuple[str | None, bool] | None) -> list[Finding]:
    subject = f"{s.app}/{s.name}"
    sync = f"storekeeper syncstores {s.app} --database {s.name}"
    if s.orphaned:
        return []  # reported with its setting
    if s.exists is None:
        return [
            Finding(
                WARNING,
                subject,
                f"Its server (service {s.service}) could not be asked.",
                f"storekeeper services test {s.service}",
            )
        ]
    if s.state == "absent" and not s.exists:
        if s.kind == "static":
            return [Finding(WARNING, subject, "The store has not been made yet.", sync)]
        return []
    if s.ready is False:
        level = ERROR
        message, fix = _split_problem(s.problem, s.state, sync)
        if s.state == "initialized" and s.problem and "database is missing" in s.problem:
            message = f"Recorded as made and initialized, but database {s.database} is missing on service {s.service}."
            fix = f"storekeeper syncstores {s.app}"
        return [Finding(level, subject, message, fix)]
    findings: list[Finding] = []
    if ownership is not None and s.access == "role":
        owner, role_exists = ownership
        if not role_exists:
            findings.append(Finding(ERROR, subject, f"Its role {s.database} is missing on service {s.service}.", sync))
        elif owner != s.database:
            findings.append(
                Finding(
                    ERROR,
                    subject,
                    f"Database {s.database} is owned by {owner}, not by the store's role {s.database}.",
                    sync,
                )
            )
    if s.access == "service":
        findings.append(
            Finding(
                WARNING,
                subject,
                "The store is reached as the service user, not a role of its own.",
                f"grant CREATEROLE to service {s.service}'s user; then {sync}",
            )
        )
    if not findings:
        findings.append(
            Finding(INFO, subject, f"Ready on service {s.service}, {_size(s.size_bytes)}, reached as its own role.")
        )
    return findings
