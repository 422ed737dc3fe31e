"""``storekeeper quickstart``: from nothing to a portal with working example apps, idempotently.

Each step checks what is already there and only does what is missing, so a
second run (or a run after an interrupted one) resumes instead of failing:

1. the home, its config and the platform database (created and migrated);
2. a database service: the home's local PostgreSQL server, started and
   registered as ``local``, unless another service is already registered
   (then that one is used; ``--service`` picks one);
3. the example apps ``links`` and ``stream_gages``, installed from the
   source checkout's ``examples/`` when they are not installed yet;
4. every unassigned setting of those apps assigned to that service;
5. their stores synced (spatial stores need PostGIS on the server: when it is
   missing, that store fails with the package to install and the rest works);
6. an admin user, with a generated password printed once (or ``--admin-password``).

Serving the portal afterwards is the CLI's job (:mod:`storekeeper.cli.quickstart`).
"""

from __future__ import annotations

import importlib
import secrets
import site
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storekeeper import apps, discovery, localdb, services, stores, users
from storekeeper.config import Config, load_config
from storekeeper.errors import AppError, ServiceError
from storekeeper.platform import db, load_platform, reset_platform

#: The example apps quickstart installs, by app package, with their source folder under examples/.
EXAMPLE_APPS = {"links": "links", "stream_gages": "stream_gages"}
#: Where to point a browser or curl first, per example app (under the portal's address).
EXAMPLE_ENTRY = {"links": "/apps/links/links", "stream_gages": "/apps/stream_gages/"}
LOCAL_SERVICE = "local"


@dataclass
class Step:
    """One thing quickstart did (``done``), found already done (``already``), or could not do."""

    name: str
    status: str  # done | already | skipped | warning | failed (| working: progress, not recorded)
    detail: str
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """What a quickstart run left behind."""

    steps: list[Step] = field(default_factory=list)
    service: str | None = None
    apps: list[str] = field(default_factory=list)
    admin_username: str = "admin"
    #: The generated admin password: set only on the run that created the admin.
    admin_password: str | None = None

    @property
    def ok(self) -> bool:
        return not any(s.status == "failed" for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "steps": [s.to_dict() for s in self.steps],
            "service": self.service,
            "apps": self.apps,
            "admin": {"username": self.admin_username, "generated_password": self.admin_password},
        }


def examples_dir() -> Path | None:
    """Return the source checkout's ``examples/`` folder, or None when storekeeper is not run from one."""
    root = Path(__file__).resolve().parents[2]
    candidate = root / "examples"
    return candidate if (candidate / "links" / "pyproject.toml").is_file() else None


def _activate_new_installs() -> None:
    """Make packages pip just installed (editable ones included) importable in this process."""
    for directory in [*site.getsitepackages(), site.getusersitepackages()]:
        if Path(directory).is_dir():
            site.addsitedir(directory)  # runs the new .pth files that editable installs rely on
    importlib.invalidate_caches()
    discovery.forget()


def install_examples(missing: list[str], source: Path | None) -> None:
    """pip-install the missing example apps from ``source`` into this interpreter's environment."""
    if source is None:
        raise AppError(
            f"The example app(s) {', '.join(missing)} are not installed, and their sources "
            "(the examples/ folder of a storekeeper checkout) were not found.",
            hint="run quickstart from a storekeeper source checkout (pip install -e .), pass --examples DIR, "
            "or skip them: storekeeper quickstart --no-examples",
        )
    paths = []
    for package in missing:
        path = source / EXAMPLE_APPS[package]
        if not (path / "pyproject.toml").is_file():
            raise AppError(
                f'The example app "{package}" has no pyproject.toml in {path}.',
                hint="pass the examples folder of a storekeeper checkout: storekeeper quickstart --examples DIR",
            )
        paths += ["-e", str(path)]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise AppError(
            f"Installing the example app(s) {', '.join(missing)} failed:\n{tail}",
            hint=f"{sys.executable} -m pip install {' '.join(paths)}",
        )
    _activate_new_installs()


def _choose_service(config: Config, platform: Any, wanted: str | None, report: Callable[[Step], None]) -> str:
    """Return the service the examples go on, starting the local server when that is the one."""
    have_local_server = localdb.status(config)["initialized"]
    existing = [s.name for s in services.list_services(platform)]
    if have_local_server and LOCAL_SERVICE in existing and not _points_at_local_server(config, platform):
        # A "local" service of the user's own: never repoint it at this home's server.
        have_local_server = False
        if wanted is None:
            wanted = LOCAL_SERVICE
    if wanted is not None and not (wanted == LOCAL_SERVICE and have_local_server):
        info = services.get_service(platform, wanted)  # names the fix when it does not exist
        report(Step("service", "already", f'Using service "{info.name}" ({info.host}:{info.port})'))
        return info.name
    if have_local_server or not existing:
        srv, created = localdb.init(config)
        started = srv.start()
        config = load_config()  # init stored the new server's password
        st = localdb.status(config)
        verb = "Created and started" if created else ("Started" if started else "Already running:")
        report(
            Step(
                "database server",
                "done" if started else "already",
                f"{verb} the local PostgreSQL {st['version']} server at {st['url']} (data in {st['datadir']})",
            )
        )
        was_registered = LOCAL_SERVICE in existing
        localdb.register_service(config, platform, LOCAL_SERVICE)
        report(
            Step(
                "service",
                "already" if was_registered else "done",
                f'Service "{LOCAL_SERVICE}" {"is" if was_registered else "registered as"} that server',
            )
        )
        return LOCAL_SERVICE
    if LOCAL_SERVICE in existing or len(existing) == 1:
        name = LOCAL_SERVICE if LOCAL_SERVICE in existing else existing[0]
        report(Step("service", "already", f'Using the registered service "{name}"'))
        return name
    raise ServiceError(
        f"Several services are registered ({', '.join(sorted(existing))}) and none is named {LOCAL_SERVICE}: "
        "quickstart does not guess which one the example apps should use.",
        hint=f"storekeeper quickstart --service {sorted(existing)[0]}",
    )


def _points_at_local_server(config: Config, platform: Any) -> bool:
    """Return whether service "local" is this home's local server (loopback, the server's port)."""
    info = services.get_service(platform, LOCAL_SERVICE)
    return info.host in ("127.0.0.1", "localhost", "::1") and info.port == localdb.server(config).port


def _bundled_server_hint(config: Config, service: str) -> str | None:
    """The fix for missing PostGIS when the store is on the local server run from the wheel, else None."""
    from storekeeper.pgserver import embedded_bindir

    if service == LOCAL_SERVICE and localdb.status(config)["initialized"]:
        bundled = embedded_bindir()
        if bundled is not None and localdb.server(config).bindir == bundled:
            return (
                "the local server runs the PostgreSQL bundled with storekeeper[local], which has no PostGIS: "
                "install PostgreSQL with PostGIS from the OS (Debian/Ubuntu: sudo apt-get install postgresql "
                "postgresql-15-postgis-3), then give the local server a new data directory "
                "(storekeeper db stop; storekeeper settings --set local.datadir NEW_DIR) and run quickstart again"
            )
    return None  # the sync's own hint names the package for the server's major version


def run(
    *,
    service: str | None = None,
    examples: bool = True,
    examples_source: Path | None = None,
    admin_username: str = "admin",
    admin_password: str | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Outcome:
    """Set everything up that is not set up yet; return what was done. See the module docs."""
    outcome = Outcome(admin_username=admin_username)

    def report(step: Step) -> None:
        outcome.steps.append(step)
        if on_step is not None:
            on_step(step)

    if admin_password is not None:
        users.check_password(admin_password)  # refuse a bad password before changing anything

    # 1. home, config, platform database
    config = load_config()
    schema = db.ensure_schema(config)
    reset_platform()
    report(
        Step(
            "platform",
            "done" if schema.changed else "already",
            f"Home {config.home}; platform database at migration {schema.after}"
            + (f" (was {schema.before})" if schema.before and schema.before != schema.after else ""),
        )
    )
    platform = load_platform()
    if admin_username not in {u.username for u in users.list_users(platform)}:
        users.check_username(admin_username)  # refuse a bad new name before registering or installing anything

    # 2. a service
    outcome.service = _choose_service(config, platform, service, report)
    config = load_config()

    # 3. example apps
    if examples:
        installed, _ = discovery.installed_apps(reload=True)
        missing = [p for p in EXAMPLE_APPS if p not in installed]
        if missing:
            if on_step is not None:  # progress only: pip takes a while
                on_step(Step("example apps", "working", f"Installing {', '.join(missing)} with pip…"))
            install_examples(missing, examples_source or examples_dir())
            installed, _ = discovery.installed_apps(reload=True)
            still = [p for p in missing if p not in installed]
            if still:
                raise AppError(
                    f"The example app(s) {', '.join(still)} were installed but are not found as apps.",
                    hint="run storekeeper quickstart again in a new shell (storekeeper apps list shows what is found)",
                )
            report(Step("example apps", "done", f"Installed {', '.join(missing)}"))
        else:
            report(Step("example apps", "already", f"Installed: {', '.join(EXAMPLE_APPS)}"))
        discovery.discover(platform)
        outcome.apps = list(EXAMPLE_APPS)

    # 4. assign every unassigned setting
    for package in outcome.apps:
        assigned, elsewhere = [], []
        for s in apps.list_settings(platform, package):
            if s.orphaned or s.dynamic:
                continue
            if s.service:
                if s.service != outcome.service:
                    elsewhere.append(s)
                continue
            apps.assign_service(platform, package, s.name, outcome.service)
            assigned.append(s.name)
        if assigned:
            report(Step("settings", "done", f'{package}: assigned {", ".join(assigned)} to "{outcome.service}"'))
        elif not elsewhere:
            report(Step("settings", "already", f"{package}: every setting has a service"))
        if elsewhere:
            # Moving a setting whose store exists would strand its data: quickstart never does.
            first = elsewhere[0]
            report(
                Step(
                    "settings",
                    "warning",
                    f"{package}: "
                    + ", ".join(f'{s.name} stays on "{s.service}"' for s in elsewhere)
                    + f' (quickstart does not move assigned settings to "{outcome.service}")',
                    hint=f"to move one: storekeeper stores drop {package} {first.name}, then storekeeper app-settings "
                    f"reset {package} {first.name}, then run quickstart again",
                )
            )

    # 5. sync
    if outcome.apps:
        for r in stores.sync_stores(platform, outcome.apps):
            if r.ok:
                already = r.action in ("up to date", "initializer ran") or r.action.startswith("skipped")
                report(Step("sync", "already" if already else "done", f"{r.app}/{r.store}: {r.action}"))
                continue
            spatial = "PostGIS" in (r.error or "")
            hint = (_bundled_server_hint(config, outcome.service) if spatial else None) or r.hint
            report(Step("sync", "warning" if spatial else "failed", f"{r.app}/{r.store}: {r.error}", hint))

    # 6. an admin
    admins = [u for u in users.list_users(platform) if u.role == "admin" and u.active]
    if admin_password is not None:
        _, new = users.upsert_user(platform, admin_username, admin_password, role="admin")
        report(Step("admin", "done", f'Admin user "{admin_username}" {"created" if new else "password set"}'))
    elif admin_username in {u.username for u in admins} or (admins and admin_username == "admin"):
        # The default name stands for whichever admin the portal already has.
        name = admin_username if admin_username in {u.username for u in admins} else admins[0].username
        outcome.admin_username = name
        report(
            Step(
                "admin",
                "already",
                f'Admin user "{name}" exists; its password is unchanged',
                hint=f"to set a new one: storekeeper quickstart --admin-password PASSWORD (user {name})",
            )
        )
    else:
        outcome.admin_password = secrets.token_urlsafe(12)
        users.upsert_user(platform, admin_username, outcome.admin_password, role="admin")
        report(Step("admin", "done", f'Admin user "{admin_username}" created with a generated password (shown once)'))
    return outcome
