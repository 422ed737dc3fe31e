"""Discovery: installed apps are registered by themselves; removed apps and settings become orphans."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint

import psycopg
import pytest

from storekeeper import AppError, apps, audit, discovery, stores
from storekeeper.platform import Platform
from tests.core.conftest import APP, database_exists, setting_record
from tests.core.fake_apps import SlimApp

INSTALLED = {
    "my_first_app": "my_first_app.app:App",
    "bench_app": "sample_apps.bench:App",
    "flaky_app": "sample_apps.flaky:App",
}

Install = Callable[..., None]


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch) -> Install:
    """Replace the installed entry points (name=value pairs), as pip install/uninstall would."""

    def set_entry_points(**points: str) -> None:
        eps = [EntryPoint(name=n, value=v, group=discovery.ENTRY_POINT_GROUP) for n, v in points.items()]
        monkeypatch.setattr(discovery, "entry_points", lambda group: [e for e in eps if e.group == group])
        monkeypatch.setattr(discovery, "NAMESPACES", ())  # no namespace (Tethys-style) apps either
        discovery.forget()

    return set_entry_points


def test_installed_apps_are_registered_by_the_app_api_with_no_extra_step(platform: Platform, service: str) -> None:
    from my_first_app.app import App

    assert App.list_persistent_store_connections() == []
    assert setting_record(platform, APP, "example_db") is not None
    assert setting_record(platform, APP, "primary") is not None


def test_list_apps_shows_every_installed_app_with_its_settings(platform: Platform) -> None:
    found, problems = apps.list_apps(platform)
    by_package = {a.package: a for a in found}
    assert set(INSTALLED) <= set(by_package)
    assert problems == []
    first = by_package[APP]
    assert first.installed
    assert first.name == "My First App"
    assert [s.name for s in first.settings] == ["example_db", "primary", "creator", "spatial_db", "temp_db"]
    kinds = {s.name: s.kind for s in first.settings}
    assert kinds["primary"] == "connection" and kinds["spatial_db"] == "database"
    assert len(by_package["bench_app"].settings) == 11


def test_registering_an_app_is_audited_once(platform: Platform) -> None:
    apps.list_apps(platform)
    apps.list_apps(platform)
    events = [e for e in audit.list_events(platform, action="app.register") if e.target == APP]
    assert len(events) == 1


def test_entry_point_named_unlike_the_package_is_a_problem_naming_both(platform: Platform, install: Install) -> None:
    install(my_first_app=INSTALLED["my_first_app"], first_app="my_first_app.app:App")
    found, problems = apps.list_apps(platform)
    assert [a.package for a in found] == [APP]
    (problem,) = problems
    assert problem.entry_point == "first_app"
    assert '"first_app"' in problem.message and '"my_first_app"' in problem.message
    assert "entry point" in problem.message and "pyproject.toml" in problem.message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("broken_app", "no_such_module_anywhere.app:App", "failed to import"),
        ("not_an_app", "tests.core.fake_apps:NotAnApp", "not a subclass of storekeeper.AppBase"),
        ("too_long_app", "tests.core.fake_apps:TooLongApp", "63"),
        ("twice_app", "tests.core.fake_apps:TwiceApp", "twice"),
    ],
)
def test_broken_app_is_reported_without_hiding_the_others(
    platform: Platform, install: Install, name: str, value: str, expected: str
) -> None:
    install(**{name: value}, flaky_app=INSTALLED["flaky_app"])
    found, problems = apps.list_apps(platform)
    assert [a.package for a in found] == ["flaky_app"]
    assert [p.entry_point for p in problems] == [name]
    assert expected in problems[0].message


def test_sync_of_a_broken_app_names_its_problem(platform: Platform, install: Install) -> None:
    install(too_long_app="tests.core.fake_apps:TooLongApp")
    with pytest.raises(AppError, match="too_long_app") as info:
        stores.sync_stores(platform, ["too_long_app"])
    assert "63" in str(info.value)


def test_setting_removed_from_code_is_orphaned_and_its_store_left_alone(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection
) -> None:
    stores.sync_stores(platform, [APP], database="temp_db")
    discovery.forget()
    discovery.ensure_registered(platform, SlimApp)
    for name in ("spatial_db", "temp_db", "creator"):
        assert setting_record(platform, APP, name)["orphaned"] is True  # type: ignore[index]
    for name in ("example_db", "primary"):
        assert setting_record(platform, APP, name)["orphaned"] is False  # type: ignore[index]
    assert database_exists(admin_conn, "my_first_app_temp_db")
    temp = next(s for s in stores.list_stores(platform, APP, discover=False) if s.name == "temp_db")
    assert temp.orphaned and temp.exists and temp.service == "local"


def test_sync_skips_orphaned_settings(
    platform: Platform, my_first_app: type, install: Install, admin_conn: psycopg.Connection
) -> None:
    install(my_first_app="tests.core.fake_apps:SlimApp")
    results = stores.sync_stores(platform, [APP])
    assert [r.store for r in results] == ["example_db"]
    assert not database_exists(admin_conn, "my_first_app_temp_db")


def test_setting_back_in_code_is_no_longer_orphaned_and_keeps_its_service(
    platform: Platform, my_first_app: type, install: Install
) -> None:
    install(my_first_app="tests.core.fake_apps:SlimApp")
    apps.list_apps(platform)
    install(my_first_app=INSTALLED["my_first_app"])
    settings = {s.name: s for s in apps.list_settings(platform, APP)}
    assert not settings["temp_db"].orphaned
    assert settings["temp_db"].service == "local"


def test_setting_that_changed_kind_loses_its_service(platform: Platform, my_first_app: type, install: Install) -> None:
    install(my_first_app="tests.core.fake_apps:KindChangedApp")
    temp = next(s for s in apps.list_settings(platform, APP) if s.name == "temp_db")
    assert temp.kind == "connection"
    assert temp.service is None


def test_uninstalled_app_is_orphaned_with_its_stores_left_alone(
    platform: Platform, flaky_app: str, install: Install, admin_conn: psycopg.Connection
) -> None:
    stores.sync_stores(platform, ["flaky_app"])
    install(my_first_app=INSTALLED["my_first_app"])
    found, _ = apps.list_apps(platform)
    flaky = next(a for a in found if a.package == "flaky_app")
    assert flaky.installed is False
    assert all(s.orphaned for s in flaky.settings)
    assert database_exists(admin_conn, "flaky_app_db")
    assert any(e.target == "flaky_app" for e in audit.list_events(platform, action="app.orphan"))


def test_sync_of_uninstalled_app_says_it_is_not_installed(platform: Platform, install: Install) -> None:
    install(my_first_app=INSTALLED["my_first_app"])
    with pytest.raises(AppError, match='"flaky_app" is not installed') as info:
        stores.sync_stores(platform, ["flaky_app"])
    assert "storekeeper apps list" in info.value.hint
