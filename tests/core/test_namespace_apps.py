"""Apps in the ``tethysapp`` namespace (Tethys's layout): found with no entry point, initializers
written without the namespace prefix, and ``storekeeper test`` running only the named app's tests.

The apps here are written into a temporary directory put on the path (in-process and for the CLI
processes), the way an installed namespace package is found; they use storekeeper's own AppBase,
so these tests need nothing of the ``tethys_sdk`` compatibility package (tests/tethys covers that).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import psycopg
import pytest

from storekeeper import apps, discovery, engines, stores
from storekeeper.errors import InvalidNameError
from storekeeper.platform import Platform
from storekeeper.stores.initializers import check_initializer_path
from tests.core.conftest import database_exists, rows

APP_PY = """
from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreDatabaseSetting


class {cls}(AppBase):
    name = "{name}"
    package = "{package}"

    def persistent_store_settings(self):
        return (
            PersistentStoreDatabaseSetting(
                name="primary_db", initializer="{initializer}", required=True
            ),
        )
"""

MODEL_PY = """
from sqlalchemy import Column, Integer, String
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class Dam(Base):
    __tablename__ = "dams"
    id = Column(Integer, primary_key=True)
    name = Column(String)


def init_primary_db(engine, first_time):
    Base.metadata.create_all(engine)
    if first_time:
        with engine.begin() as conn:
            conn.execute(Dam.__table__.insert().values(name="{package} first dam"))


def add_dam(name):
    from tethysapp.{package}.app import {cls} as app

    Session = app.get_persistent_store_database("primary_db", as_sessionmaker=True)
    with Session() as session:
        session.add(Dam(name=name))
        session.commit()


def dam_names():
    from tethysapp.{package}.app import {cls} as app

    Session = app.get_persistent_store_database("primary_db", as_sessionmaker=True)
    with Session() as session:
        return [d.name for d in session.query(Dam).order_by(Dam.id)]
"""

TEST_PY = """
import sys

from tethysapp.{package}.model import add_dam, dam_names


def test_{package}_modules_are_imported_once_by_their_full_name():
    assert __name__ == "tethysapp.{package}.tests.test_{package}", __name__
    assert "{package}" not in sys.modules  # no second copy of the app as a top-level package


def test_{package}_starts_from_the_first_dam():
    assert dam_names() == ["{package} first dam"]


def test_{package}_adds_a_dam():
    add_dam("another")
    assert dam_names()[-1] == "another"
"""


def write_app(root: Path, package: str, cls: str, *, initializer: str | None = None, app_py: str | None = None) -> None:
    """Write a namespace app ``tethysapp.<package>`` (no ``tethysapp/__init__.py``) under ``root``."""
    pkg = root / "tethysapp" / package
    (pkg / "tests").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    fields = {"package": package, "cls": cls, "name": package.replace("_", " ").title()}
    init = initializer if initializer is not None else f"{package}.model.init_primary_db"
    (pkg / "app.py").write_text(app_py if app_py is not None else APP_PY.format(initializer=init, **fields))
    (pkg / "model.py").write_text(MODEL_PY.format(**fields))
    (pkg / "tests" / "__init__.py").write_text("")  # as Tethys's app template has it
    (pkg / "tests" / f"test_{package}.py").write_text(TEST_PY.format(**fields))


@pytest.fixture
def ns_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admin_conn: psycopg.Connection) -> Iterator[Path]:
    """A directory on the path holding the ``tethysapp`` namespace apps ns_alpha and ns_beta."""
    root = tmp_path / "site"
    write_app(root, "ns_alpha", "AlphaApp")
    write_app(root, "ns_beta", "BetaApp")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
    importlib.invalidate_caches()
    discovery.forget()
    yield root
    engines.clear()
    discovery.forget()
    for name in [m for m in sys.modules if m.startswith(("tethysapp.ns_", "tethysapp.broken"))]:
        del sys.modules[name]
    for db in admin_conn.execute("SELECT datname FROM pg_database WHERE datname ~ '(^|_)ns_(alpha|beta)_'"):
        admin_conn.execute(f'DROP DATABASE IF EXISTS "{db[0]}" WITH (FORCE)')


def test_namespace_apps_are_found_without_an_entry_point(ns_root: Path, platform: Platform) -> None:
    assert {"ns_alpha", "ns_beta"} <= set(discovery.installed_names())
    found, problems = apps.list_apps(platform)
    by_package = {a.package: a for a in found}
    assert by_package["ns_alpha"].name == "Ns Alpha"
    assert [s.name for s in by_package["ns_beta"].settings] == ["primary_db"]
    assert not [p for p in problems if p.entry_point.startswith("ns_")]


def test_naming_one_namespace_app_imports_no_other(ns_root: Path, platform: Platform) -> None:
    discovery.discover(platform, ["ns_alpha"])
    assert "tethysapp.ns_alpha.app" in sys.modules
    assert "tethysapp.ns_beta.app" not in sys.modules


def test_an_app_found_both_ways_is_one_app(ns_root: Path, platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [EntryPoint(name="ns_alpha", value="tethysapp.ns_alpha.app:AlphaApp", group=discovery.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(discovery, "entry_points", lambda group: eps)
    discovery.forget()
    found, problems = apps.list_apps(platform)
    assert [a.package for a in found].count("ns_alpha") == 1
    assert not [p for p in problems if p.entry_point.startswith("ns_")]


def test_a_namespace_package_without_an_app_class_is_a_problem_that_names_it(ns_root: Path, platform: Platform) -> None:
    write_app(ns_root, "broken_one", "X", app_py="class NotAnApp:\n    pass\n")
    discovery.forget()
    found, problems = apps.list_apps(platform)
    assert "broken_one" not in {a.package for a in found}
    (problem,) = [p for p in problems if p.entry_point == "broken_one"]
    assert "tethysapp.broken_one.app defines no app class" in problem.message
    assert "TethysAppBase" in problem.message
    assert {"ns_alpha", "ns_beta"} <= {a.package for a in found}  # one broken app hides no other


def test_sync_runs_an_initializer_written_without_the_namespace_prefix(
    ns_root: Path, platform: Platform, service: str, pg_admin_url: str
) -> None:
    apps.assign_service(platform, "ns_alpha", "primary_db", service)
    (result,) = stores.sync_stores(platform, ["ns_alpha"])
    assert result.ok, result.error
    assert result.action == "created" and result.first_time is True
    assert rows(pg_admin_url, "ns_alpha_primary_db", "SELECT name FROM dams") == [("ns_alpha first dam",)]
    from tethysapp.ns_alpha.model import add_dam, dam_names

    add_dam("Hoover")
    assert dam_names() == ["ns_alpha first dam", "Hoover"]


def test_an_initializer_that_imports_neither_way_names_both_paths(
    tmp_path: Path, ns_root: Path, platform: Platform, service: str, admin_conn: psycopg.Connection
) -> None:
    write_app(ns_root, "broken_init", "BrokenInit", initializer="broken_init.nowhere.init_primary_db")
    discovery.forget()
    apps.assign_service(platform, "broken_init", "primary_db", service)
    (result,) = stores.sync_stores(platform, ["broken_init"])
    assert not result.ok
    message = result.error or ""
    assert '"broken_init.nowhere.init_primary_db"' in message
    assert '"tethysapp.broken_init.nowhere.init_primary_db"' in message
    assert "persistent_store_settings()" in (result.hint or "")
    admin_conn.execute('DROP DATABASE IF EXISTS "broken_init_primary_db" WITH (FORCE)')


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("ns_alpha.model.init_primary_db", True),
        ("tethysapp.ns_alpha.model.init_primary_db", True),
        ("tethysapp.ns_alpha.model:init_primary_db", True),
        ("tethysapp.ns_beta.model.init_primary_db", False),  # another app's code
        ("ns_beta.model.init_primary_db", False),
        ("tethysapp.model", False),  # the shared namespace is no app's own package
        ("ns_alpha", False),
        ("tethysapp.ns_alpha", False),
        ("os.system", False),
    ],
)
def test_initializer_paths_sent_from_outside_must_stay_inside_the_namespace_app(
    ns_root: Path, platform: Platform, path: str, allowed: bool
) -> None:
    if allowed:
        check_initializer_path("ns_alpha", path)
    else:
        with pytest.raises(InvalidNameError, match="not allowed"):
            check_initializer_path("ns_alpha", path)


def test_storekeeper_test_runs_only_the_named_namespace_apps_tests(
    ns_root: Path, platform: Platform, service: str, run_cli, admin_conn: psycopg.Connection
) -> None:
    for package in ("ns_alpha", "ns_beta"):
        apps.assign_service(platform, package, "primary_db", service)
    for package, other in (("ns_alpha", "ns_beta"), ("ns_beta", "ns_alpha")):
        result = run_cli("test", package, "--", "-p", "no:cacheprovider", "-v")
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert re.search(r"\b3 passed\b", output), output
        assert f"test_{package}_adds_a_dam PASSED" in output
        assert f"test_{other}" not in output  # every Tethys app shares tethysapp: only its own tests run
    assert not database_exists(admin_conn, "ns_alpha_primary_db")  # the tests ran on copies


def test_a_namespace_app_whose_package_differs_from_its_directory_is_refused_with_the_fix(
    ns_root: Path, platform: Platform
) -> None:
    app_py = APP_PY.format(cls="Misnamed", name="Misnamed", package="someone_else", initializer="")
    write_app(ns_root, "misnamed", "Misnamed", app_py=app_py)
    discovery.forget()
    found, problems = apps.list_apps(platform)
    assert "someone_else" not in {a.package for a in found} and "misnamed" not in {a.package for a in found}
    (problem,) = [p for p in problems if p.entry_point == "misnamed"]
    assert 'says its package is "someone_else"' in problem.message
    assert 'package = "misnamed"' in problem.message


def test_an_old_style_namespace_package_is_searched_too_and_still_shared(
    tmp_path: Path, platform: Platform, service: str, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older Tethys apps ship ``tethysapp/__init__.py`` extending ``__path__``: one directory per app."""
    roots = [tmp_path / "alpha-site", tmp_path / "beta-site"]
    for root, (package, cls) in zip(roots, (("ns_alpha", "AlphaApp"), ("ns_beta", "BetaApp")), strict=True):
        write_app(root, package, cls)
        (root / "tethysapp" / "__init__.py").write_text(
            "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"
        )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(str(r) for r in roots))
    listed = run_cli("apps", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"ns_alpha", "ns_beta"} <= {a["package"] for a in json.loads(listed.stdout)["apps"]}
    for package in ("ns_alpha", "ns_beta"):
        assert run_cli("app-settings", "set", package, "primary_db", service).returncode == 0
    result = run_cli("test", "ns_beta", "--", "-p", "no:cacheprovider", "-v")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "test_ns_beta_adds_a_dam PASSED" in output and "test_ns_alpha" not in output
