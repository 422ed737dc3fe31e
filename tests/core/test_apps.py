"""Admin functions on apps and settings: assign, reset, remove, configured/ready."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import psycopg
import pytest

from storekeeper import AppError, ServiceError, SettingError, StoreError, apps, audit, discovery, services, stores
from storekeeper.platform import Platform
from tests.core.conftest import APP, EXAMPLE_DB, database_exists, setting_record


def _only_installed(monkeypatch: pytest.MonkeyPatch, **points: str) -> None:
    eps = [EntryPoint(name=n, value=v, group=discovery.ENTRY_POINT_GROUP) for n, v in points.items()]
    monkeypatch.setattr(discovery, "entry_points", lambda group: eps)
    monkeypatch.setattr(discovery, "NAMESPACES", ())  # no namespace (Tethys-style) apps either
    discovery.forget()


def test_assign_plugs_the_service_into_the_setting(platform: Platform, service: str) -> None:
    info = apps.assign_service(platform, APP, "example_db", service)
    assert info.service == service
    listed = {s.name: s.service for s in apps.list_settings(platform, APP)}
    assert listed["example_db"] == service
    assert listed["temp_db"] is None
    (event,) = audit.list_events(platform, action="setting.assign")
    assert event.target == "my_first_app/example_db" and event.outcome == "ok"


def test_assign_to_unknown_setting_lists_known_ones_and_the_list_command(platform: Platform, service: str) -> None:
    with pytest.raises(SettingError) as info:
        apps.assign_service(platform, APP, "exmaple_db", service)
    assert "exmaple_db" in str(info.value) and "example_db" in str(info.value)
    assert info.value.hint == "storekeeper app-settings list my_first_app"


def test_assign_of_unknown_service_names_the_services_list_command(platform: Platform) -> None:
    with pytest.raises(ServiceError) as info:
        apps.assign_service(platform, APP, "example_db", "nowhere")
    assert "nowhere" in str(info.value)
    assert "storekeeper services list" in info.value.hint


def test_assign_to_unknown_app_names_it(platform: Platform, service: str) -> None:
    with pytest.raises(AppError) as info:
        apps.assign_service(platform, "no_such_app", "db", service)
    assert "no_such_app" in str(info.value)
    assert "storekeeper apps list" in info.value.hint


def test_reset_unplugs_the_service(platform: Platform, my_first_app: type) -> None:
    assert apps.reset_setting(platform, APP, "temp_db").service is None
    assert next(s for s in apps.list_settings(platform, APP) if s.name == "temp_db").service is None


def test_reset_is_refused_while_the_store_exists(
    platform: Platform, my_first_app: type, admin_conn: psycopg.Connection
) -> None:
    stores.sync_stores(platform, [APP], database="example_db")
    with pytest.raises(SettingError) as info:
        apps.reset_setting(platform, APP, "example_db")
    assert "storekeeper stores drop my_first_app example_db" in info.value.hint
    assert next(s for s in apps.list_settings(platform, APP) if s.name == "example_db").service == "local"
    stores.drop_store(platform, APP, "example_db")
    assert apps.reset_setting(platform, APP, "example_db").service is None
    assert not database_exists(admin_conn, EXAMPLE_DB)


def test_reassign_to_another_service_is_refused_while_the_store_exists(
    platform: Platform, my_first_app: type, pg_admin_url: str
) -> None:
    stores.sync_stores(platform, [APP], database="example_db")
    services.create_service(platform, name="second", host="127.0.0.1", username="u", password="p")
    with pytest.raises(SettingError) as info:
        apps.assign_service(platform, APP, "example_db", "second")
    assert "storekeeper stores drop my_first_app example_db" in info.value.hint


def test_assign_bumps_generation_so_cached_engines_are_rebuilt(platform: Platform, my_first_app: type) -> None:
    before = setting_record(platform, APP, "temp_db")["generation"]  # type: ignore[index]
    services.create_service(platform, name="second", host="127.0.0.1", username="u", password="p")
    assert apps.assign_service(platform, APP, "temp_db", "second").service == "second"
    assert setting_record(platform, APP, "temp_db")["generation"] == before + 1  # type: ignore[index]


def test_app_is_configured_once_required_settings_have_a_service_and_ready_once_synced(
    platform: Platform, service: str, postgis_available: bool
) -> None:
    from tests.pg_server import require_postgis

    require_postgis(postgis_available)
    assert not apps.get_app(platform, APP).configured
    for name in ("example_db", "spatial_db"):
        apps.assign_service(platform, APP, name, service)
    assert not apps.get_app(platform, APP).configured  # "primary" is required too
    apps.assign_service(platform, APP, "primary", service)
    info = apps.get_app(platform, APP)
    assert info.configured and not info.ready  # temp_db and creator are optional
    stores.sync_stores(platform, [APP])
    info = apps.get_app(platform, APP)
    assert info.ready
    assert info.to_dict()["ready"] is True


def test_remove_of_installed_app_without_orphans_is_refused(platform: Platform, my_first_app: type) -> None:
    with pytest.raises(AppError) as info:
        apps.remove_app(platform, APP)
    assert "installed" in str(info.value)
    assert "storekeeper apps remove my_first_app" in info.value.hint
    assert len(apps.list_settings(platform, APP)) == 5


def test_remove_of_orphaned_settings_is_refused_while_their_stores_exist(
    platform: Platform, my_first_app: type, monkeypatch: pytest.MonkeyPatch, admin_conn: psycopg.Connection
) -> None:
    stores.sync_stores(platform, [APP], database="temp_db")
    _only_installed(monkeypatch, my_first_app="tests.core.fake_apps:SlimApp")
    with pytest.raises(StoreError) as info:
        apps.remove_app(platform, APP)
    assert "temp_db" in str(info.value)
    assert "--drop-stores" in info.value.hint
    assert database_exists(admin_conn, "my_first_app_temp_db")
    assert setting_record(platform, APP, "temp_db") is not None


def test_remove_with_drop_stores_forgets_orphaned_settings_and_drops_their_stores(
    platform: Platform, my_first_app: type, monkeypatch: pytest.MonkeyPatch, admin_conn: psycopg.Connection
) -> None:
    stores.sync_stores(platform, [APP], database="temp_db")
    stores.sync_stores(platform, [APP], database="example_db")
    _only_installed(monkeypatch, my_first_app="tests.core.fake_apps:SlimApp")
    removed = apps.remove_app(platform, APP, drop_stores=True)
    assert sorted(removed) == ["creator", "spatial_db", "temp_db"]
    assert not database_exists(admin_conn, "my_first_app_temp_db")
    assert database_exists(admin_conn, EXAMPLE_DB)
    assert [s.name for s in apps.list_settings(platform, APP)] == ["example_db", "primary"]


def test_remove_of_uninstalled_app_forgets_it(
    platform: Platform, flaky_app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_installed(monkeypatch, my_first_app="my_first_app.app:App")
    assert apps.remove_app(platform, "flaky_app") == ["db"]
    found, _ = apps.list_apps(platform)
    assert "flaky_app" not in [a.package for a in found]
    assert any(e.target == "flaky_app" for e in audit.list_events(platform, action="app.remove"))
