"""Hostile names for app packages, settings, dynamic stores and services: refused with the rule, nothing made.

Each kind of bad name (control characters, quotes, SQL punctuation, look-alike
letters, too long, empty, ...) is tried where a name enters storekeeper: an
installed app's ``package`` and its settings (apps whose entry points the test
installs, then ``apps list`` and ``syncstores``), dynamic stores
(``create_persistent_store``, REST and ``stores create``), services
(``services create``) and the names CLI commands take as arguments. Each must be
refused with an error stating the rule, without echoing control characters; the
server's databases and roles (name and oid) and the platform's apps, settings
and services must be the same after as before. SQL reserved words and names
that merely look special (``select``, ``user``, ``template0``, a 63-byte database
name...) are valid names and must work: made, used and dropped.

Figures: tried (names tried) / failed (not refused, or refused without the rule)
/ lost (objects made on the server or recorded in the platform database).
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from storekeeper import InvalidNameError, StorekeeperError, discovery, services, users
from storekeeper.config import load_config
from storekeeper.platform import Platform
from tests.reliability import crash_app
from tests.reliability.conftest import (
    APP,
    Figures,
    Home,
    admin_connect,
    database_row,
    register_service,
    server_objects,
    wipe,
    write_dist_info,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

#: Every kind of bad name, refused for app packages, settings and stores (``[a-z][a-z0-9_]*``, <= 63 bytes).
HOSTILE: dict[str, str] = {
    "NUL": "ab\x00cd",
    "CR/LF": "ab\r\ncd",
    "tab": "ab\tcd",
    "DEL": "ab\x7fcd",
    "ANSI escape": "ab\x1b[31mcd",
    "space": "ab cd",
    "double quote": 'ab"cd',
    "single quote": "ab'cd",
    "semicolon": "ab;drop_role",
    "SQL comment": "ab--cd",
    "path": "../etc",
    "Cyrillic look-alike": "\u0430pp",
    "fullwidth": "\uff41pp",
    "emoji": "app\U0001f600",
    "uppercase": "App",
    "leading digit": "1app",
    "leading underscore": "_app",
    "64 bytes": "a" * 64,
    "empty": "",
}
#: Refused for services (``[A-Za-z0-9][A-Za-z0-9_.-]*``, <= 63): service names are labels, not SQL identifiers.
HOSTILE_SERVICES: dict[str, str] = {
    **{k: v for k, v in HOSTILE.items() if k not in ("uppercase", "leading digit", "SQL comment")},
    "leading dash": "--cd",
}
#: Valid names that look special; they must work.
RESERVED_WORDS = ["select", "user", "table", "order"]
LOOKALIKE_VALID = ["template0", "postgres", "pg_catalog_x"]
NAME_RULE = re.compile(r"\[a-z\]\[a-z0-9_\]\*|lowercase letters, digits and _|at most 63|reserve")
SERVICE_RULE = re.compile(r"letters, digits, '_', '\.' and '-' only")
#: Pydantic's own length rules, which the REST API states before storekeeper sees the name.
LENGTH_RULE = re.compile(r"at least 1 character|at most 63 characters")
RAW_CONTROL = ("\x00", "\x1b", "\x7f", "\r")
#: The longest store name crash_app may have: crash_app_<name> is 63 bytes.
LONGEST = "s" * (63 - len(APP) - 1)
_modules = itertools.count()


@pytest.fixture
def hostile_home(
    platform: Platform,
    sk_home: Path,
    installed: Path,
    pg_admin_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Home]:
    """A home with service "local" on the test server, crash_app's connection setting assigned to it."""
    from storekeeper import apps

    wipe(pg_admin_url)
    register_service(platform, "local", pg_admin_url)
    apps.assign_service(platform, APP, "primary", "local")
    apps.list_apps(platform)  # record every installed app now: the attempts must record nothing new
    extra = tmp_path / "hostile-apps"
    extra.mkdir()
    monkeypatch.syspath_prepend(str(extra))
    yield Home(sk_home, installed, platform, paths=(extra,))
    wipe(pg_admin_url)
    wipe(pg_admin_url, r"^select_")
    discovery.forget()


def install_apps(home: Home, apps: dict[str, tuple[str, str]]) -> None:
    """Install apps (entry point -> (package, settings expression)) for this process and the home's processes."""
    directory = home.paths[0]
    module = f"sk_hostile_apps_{next(_modules)}"
    source = [
        "from storekeeper import AppBase",
        "from storekeeper.app_settings import PersistentStoreConnectionSetting as C",
        "from storekeeper.app_settings import PersistentStoreDatabaseSetting as D",
    ]
    points = {}
    for i, (entry_point, (package, settings)) in enumerate(apps.items()):
        source.append(
            f"\n\nclass App{i}(AppBase):\n    name = {package!r}\n    package = {package!r}\n\n"
            f"    def persistent_store_settings(self):\n        return ({settings})\n"
        )
        points[entry_point] = f"{module}:App{i}"
    (directory / f"{module}.py").write_text("\n".join(source))
    write_dist_info(directory, module, points)
    discovery.forget()


def recorded(platform: Platform) -> tuple[set[Any], ...]:
    """The platform's apps, settings and services."""
    with platform.engine.connect() as conn:
        apps = set(conn.execute(text("SELECT package FROM apps")).scalars())
        settings = {tuple(r) for r in conn.execute(text("SELECT app_id, name FROM settings"))}
        names = set(conn.execute(text("SELECT name FROM services")).scalars())
    return apps, settings, names


class Attempts:
    """Counts refusals: each attempt must fail, state ``rule``, and not echo control characters."""

    def __init__(self, case: str, url: str, platform: Platform) -> None:
        self.figures = Figures(case)
        self.url = url
        self.platform = platform
        with admin_connect(url) as conn:
            self.objects = server_objects(conn)
        self.records = recorded(platform)

    def refused(self, where: str, kind: str, value: str, ok: bool, said: str, rule: re.Pattern[str]) -> None:
        self.figures.tried += 1
        label = f"{where} {kind} {value!r}"
        wrong = []
        if ok:
            wrong.append("accepted")
        elif not rule.search(said):
            wrong.append("refused without the rule")
        if not ok and (any(c in said for c in RAW_CONTROL) or (value and "\n" in value and value in said)):
            wrong.append("echoes control characters raw")
        if wrong:
            self.figures.failed += 1
            self.figures.problems.append(f"{label}: {' and '.join(wrong)}: {said.strip()[:300]!r}")

    def check(self) -> None:
        with admin_connect(self.url) as conn:
            dbs, roles = server_objects(conn)
        made = sorted(
            {f"database {n}" for n, _ in dbs - self.objects[0]} | {f"role {n}" for n, _ in roles - self.objects[1]}
        )
        gone = sorted(
            {f"database {n}" for n, _ in self.objects[0] - dbs} | {f"role {n}" for n, _ in self.objects[1] - roles}
        )
        now = recorded(self.platform)
        new = [sorted(map(str, after - before)) for before, after in zip(self.records, now, strict=True)]
        for what, found in (("made on the server", made), ("gone from the server", gone)):
            if found:
                self.figures.lost += len(found)
                self.figures.problems.append(f"{what}: {found}")
        for what, found in zip(("apps", "settings", "services"), new, strict=True):
            if found:
                self.figures.lost += len(found)
                self.figures.problems.append(f"{what} recorded: {found}")
        self.figures.check()


def problem_of(home: Home, entry_point: str) -> str | None:
    result = home.invoke("apps", "list", "--json")
    import json

    problems = json.loads(result.stdout)["problems"]
    return next((p["message"] for p in problems if p["entry_point"] == entry_point), None)


def test_hostile_app_packages_are_refused_with_the_rule(hostile_home: Home, pg_admin_url: str) -> None:
    kinds = {**HOSTILE, "pg_ prefix": "pg_app", "bare pg": "pg"}
    apps = {f"hostile_{i:02d}": (v, "D(name='db', required=False),") for i, v in enumerate(kinds.values())}
    attempts = Attempts("hostile app packages", pg_admin_url, hostile_home.platform)
    install_apps(hostile_home, apps)
    listed = hostile_home.cli("apps", "list", "--json")  # a real process sees them too
    assert listed.returncode == 0, listed.stderr
    import json

    problems = {p["entry_point"]: p["message"] for p in json.loads(listed.stdout)["problems"]}
    for (entry_point, (value, _)), kind in zip(apps.items(), kinds, strict=True):
        message = problems.get(entry_point)
        attempts.refused("apps list:", kind, value, message is None, message or "", NAME_RULE)
        code, out, err = hostile_home.run("syncstores", entry_point, "--json")
        attempts.refused("syncstores:", kind, value, code == 0, out + err, NAME_RULE)
    attempts.check()


def test_hostile_setting_names_are_refused_with_the_rule(hostile_home: Home, pg_admin_url: str) -> None:
    """Apps that declare a database (or connection) setting with a bad name fail to load, saying the rule."""
    apps = {}
    for i, value in enumerate(HOSTILE.values()):
        declared = "D" if i % 2 else "C"  # database and connection settings, alternately
        apps[f"hostile_s{i:02d}"] = (f"hostile_s{i:02d}", f"{declared}(name={value!r}, required=False),")
    too_long = "s" * (63 - len("hostile_len"))  # hostile_len_sss... is 64 bytes
    apps["hostile_len"] = ("hostile_len", f"D(name={too_long!r}, required=False),")
    kinds = [*HOSTILE, "database name over 63 bytes"]
    attempts = Attempts("hostile setting names", pg_admin_url, hostile_home.platform)
    install_apps(hostile_home, apps)
    for (entry_point, (_, declared)), kind in zip(apps.items(), kinds, strict=True):
        message = problem_of(hostile_home, entry_point)
        attempts.refused("declared setting:", kind, declared, message is None, message or "", NAME_RULE)
        code, out, err = hostile_home.run("syncstores", entry_point, "--json")
        attempts.refused("syncstores:", kind, declared, code == 0, out + err, NAME_RULE)
    attempts.check()


def admin_client(platform: Platform) -> TestClient:
    from storekeeper.portal import auth
    from storekeeper.portal.app import create_app

    users.upsert_user(platform, "admin", "admin-password-1", role="admin")
    token = auth.create_token(platform, "admin", "tests")[1]
    return TestClient(create_app(load_config()), headers={"Authorization": f"Bearer {token}"})


def test_hostile_dynamic_store_names_are_refused_with_the_rule(hostile_home: Home, pg_admin_url: str) -> None:
    kinds = {**HOSTILE, "database name over 63 bytes": LONGEST + "s"}
    attempts = Attempts("hostile dynamic store names", pg_admin_url, hostile_home.platform)
    with admin_client(hostile_home.platform) as client:
        for kind, value in kinds.items():
            try:
                crash_app.App.create_persistent_store(value, "primary", initializer=crash_app.INITIALIZER)
                ok, said = True, ""
            except StorekeeperError as err:
                ok, said = False, f"{err.message}\n{err.hint}"
            except Exception as err:  # anything but storekeeper's own error is a failure to refuse properly
                ok, said = False, f"{type(err).__name__}: {err}"
            attempts.refused("create_persistent_store:", kind, value, ok, said, NAME_RULE)
            response = client.post(f"/api/v1/apps/{APP}/stores", json={"name": value, "connection": "primary"})
            attempts.refused(
                f"REST POST ({response.status_code}):", kind, value, response.status_code < 400 or response.status_code >= 500,
                response.text, re.compile(f"{NAME_RULE.pattern}|{LENGTH_RULE.pattern}"),
            )  # fmt: skip
            code, out, err = hostile_home.run("stores", "create", APP, value, "-c", "primary")
            attempts.refused("stores create:", kind, value, code == 0, out + err, NAME_RULE)
    attempts.check()


def test_hostile_service_names_are_refused_with_the_rule(hostile_home: Home, pg_admin_url: str) -> None:
    u = make_url(pg_admin_url)
    attempts = Attempts("hostile service names", pg_admin_url, hostile_home.platform)
    for kind, value in HOSTILE_SERVICES.items():
        code, out, err = hostile_home.run(
            "services", "create", "persistent", "--name", value, "--url", f"postgresql://{u.username}@{u.host}:{u.port}/postgres",
            "--password-stdin", input=f"{u.password}\n",
        )  # fmt: skip
        attempts.refused("services create:", kind, value, code == 0, out + err, SERVICE_RULE)
        try:
            services.create_service(
                hostile_home.platform, name=value, host=u.host or "", port=u.port or 5432, username="x", password="x"
            )
            ok, said = True, ""
        except InvalidNameError as err:
            ok, said = False, err.message
        attempts.refused("create_service:", kind, value, ok, said, SERVICE_RULE)
    attempts.check()


def test_hostile_names_in_cli_arguments_are_refused_with_the_rule(hostile_home: Home, pg_admin_url: str) -> None:
    attempts = Attempts("hostile names as CLI arguments", pg_admin_url, hostile_home.platform)
    for kind, value in HOSTILE.items():
        for where, args in (
            ("app-settings set APP:", ["app-settings", "set", value, "primary", "local"]),
            ("app-settings set SETTING:", ["app-settings", "set", APP, value, "local"]),
            ("apps show:", ["apps", "show", value]),
            ("syncstores:", ["syncstores", value]),
            ("stores list:", ["stores", "list", value]),
            ("stores drop:", ["stores", "drop", APP, value, "--yes"]),
            ("rotate-credentials --database:", ["stores", "rotate-credentials", APP, "--database", value]),
        ):
            code, out, err = hostile_home.run(*args)
            attempts.refused(where, kind, value, code == 0, out + err, NAME_RULE)
    attempts.check()


def test_reserved_words_and_lookalikes_work_where_names_are_allowed(hostile_home: Home, pg_admin_url: str) -> None:
    """A store named ``select`` (and ``user``, ``template0``, a 63-byte one...) is made, used and dropped."""
    figures = Figures("valid names that look special")
    for name in [*RESERVED_WORDS, *LOOKALIKE_VALID, LONGEST]:
        figures.tried += 1
        database = f"{APP}_{name}"
        try:
            assert crash_app.App.create_persistent_store(name, "primary", initializer=crash_app.INITIALIZER)
            engine = crash_app.App.get_persistent_store_database(name)
            with engine.begin() as conn:
                conn.execute(text(f'CREATE TABLE "{name}" ("{name}" int)'))
                conn.execute(text(f'INSERT INTO "{name}" ("{name}") VALUES (1)'))
                assert conn.execute(text(f'SELECT "{name}" FROM "{name}"')).scalar() == 1
            with admin_connect(pg_admin_url) as server:
                assert database_row(server, database) is not None, f"{database} is not on the server under that name"
            assert crash_app.App.drop_persistent_store(name)
            with admin_connect(pg_admin_url) as server:
                left = (
                    database_row(server, database)
                    or server.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database,)).fetchone()
                )
            assert not left, f"{database} or its role is still there after the drop"
        except Exception as err:
            figures.failed += 1
            figures.problems.append(f"store {name!r}: {type(err).__name__}: {err}")
    # An app whose package and settings are reserved words, through the CLI.
    install_apps(hostile_home, {"select": ("select", "C(name='order'), D(name='user'), D(name='table'),")})
    steps = [
        *(["app-settings", "set", "select", s, "local"] for s in ("order", "user", "table")),
        ["syncstores", "select", "--json"],
        ["stores", "drop", "select", "user", "--yes"],
        ["stores", "drop", "select", "table", "--yes"],
    ]
    for args in steps:
        figures.tried += 1
        code, out, err = hostile_home.run(*args)
        if code != 0:
            figures.failed += 1
            figures.problems.append(f"storekeeper {' '.join(args)}: exit {code}: {(out + err).strip()[:300]}")
        elif args[0] == "syncstores":
            with admin_connect(pg_admin_url) as server:
                missing = [d for d in ("select_user", "select_table") if database_row(server, d) is None]
            if missing:
                figures.failed += 1
                figures.problems.append(f"syncstores select: {missing} not on the server")
    figures.check()
