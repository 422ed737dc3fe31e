"""The tethys_sdk stand-in: every name a Tethys app's persistent-store code imports, and what each does."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import unittest
from pathlib import Path

import pytest

import storekeeper
from storekeeper.app_settings import UnmanagedSetting

#: module -> the names a Tethys app imports from it.
SURFACE = {
    "tethys_sdk.app_settings": [
        "PersistentStoreDatabaseSetting",
        "PersistentStoreConnectionSetting",
        "CustomSetting",
        "SecretCustomSetting",
        "CustomSecretSetting",
        "JSONCustomSetting",
        "DatasetServiceSetting",
        "SpatialDatasetServiceSetting",
        "WebProcessingServiceSetting",
        "SchedulerSetting",
    ],
    "tethys_sdk.base": ["TethysAppBase", "url_map_maker"],
    "tethys_sdk.routing": ["controller", "handler", "consumer", "url_map_maker"],
    "tethys_sdk.permissions": [
        "Permission",
        "PermissionGroup",
        "permission_required",
        "login_required",
        "has_permission",
    ],
    "tethys_sdk.testing": ["TethysTestCase", "is_testing_environment"],
}


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_every_name_a_tethys_app_imports_is_there_with_a_docstring(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__doc__
    for name in SURFACE[module]:
        obj = getattr(mod, name)
        assert obj.__doc__, f"{module}.{name} has no docstring"


def test_the_persistent_store_settings_are_storekeepers_and_take_tethys_keywords() -> None:
    from tethys_sdk.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting

    db = PersistentStoreDatabaseSetting(
        name="primary_db",
        initializer="dam_inventory.model.init_primary_db",
        spatial=True,
        dynamic=False,
        initialized=False,
    )
    assert isinstance(db, storekeeper.app_settings.PersistentStoreDatabaseSetting)
    assert (db.name, db.initializer, db.spatial, db.required) == (
        "primary_db",
        "dam_inventory.model.init_primary_db",
        True,
        True,
    )
    assert PersistentStoreConnectionSetting is storekeeper.app_settings.PersistentStoreConnectionSetting
    with pytest.raises(storekeeper.errors.InvalidNameError):
        PersistentStoreDatabaseSetting(name="Primary DB")  # a store name still becomes a database name


def test_other_setting_kinds_are_accepted_with_their_usual_arguments_and_listed_as_unmanaged() -> None:
    from tethys_sdk import app_settings as s

    declared = [
        s.CustomSetting(
            name="max_dams", type=s.CustomSetting.TYPE_INTEGER, description="Most dams.", required=False, default=10
        ),
        s.CustomSetting(name="flag", type=s.CustomSetting.TYPE_BOOLEAN, required=True),
        s.SecretCustomSetting(name="api_key", description="A key.", required=True),
        s.JSONCustomSetting(name="config", default={"a": 1}),
        s.DatasetServiceSetting(name="ckan", engine=s.DatasetServiceSetting.CKAN, required=False),
        s.SpatialDatasetServiceSetting(name="geoserver", engine=s.SpatialDatasetServiceSetting.GEOSERVER),
        s.WebProcessingServiceSetting(name="wps", description="Processing."),
        s.SchedulerSetting(name="condor", engine=s.SchedulerSetting.HTCONDOR),
    ]
    assert declared[0].to_unmanaged() == UnmanagedSetting("CustomSetting", "max_dams", "Most dams.")
    assert [d.to_unmanaged().kind for d in declared[2:]] == [
        "SecretCustomSetting",
        "JSONCustomSetting",
        "DatasetServiceSetting",
        "SpatialDatasetServiceSetting",
        "WebProcessingServiceSetting",
        "SchedulerSetting",
    ]
    assert [
        s.CustomSetting.TYPE_STRING,
        s.CustomSetting.TYPE_INTEGER,
        s.CustomSetting.TYPE_FLOAT,
        s.CustomSetting.TYPE_BOOLEAN,
        s.CustomSetting.TYPE_UUID,
    ] == ["STRING", "INTEGER", "FLOAT", "BOOLEAN", "UUID"]
    assert s.CustomSecretSetting is s.SecretCustomSetting


@pytest.mark.parametrize("name", [None, "", "   ", 42, b"max_dams"])
def test_an_unmanaged_setting_without_a_usable_name_is_refused_with_its_kind(name: object) -> None:
    from tethys_sdk.app_settings import CustomSetting

    with pytest.raises(ValueError, match="CustomSetting needs a name"):
        CustomSetting(name=name, type=CustomSetting.TYPE_STRING)  # type: ignore[arg-type]


def test_tethys_class_attributes_and_optional_methods_are_accepted() -> None:
    from tethys_sdk.app_settings import CustomSetting, PersistentStoreDatabaseSetting
    from tethys_sdk.base import TethysAppBase, url_map_maker
    from tethys_sdk.permissions import Permission, PermissionGroup

    class MyApp(TethysAppBase):
        name = "My App"
        package = "my_tethys_app"
        index = "home"
        icon = "my_tethys_app/images/icon.gif"
        description = "An app."
        tags = '"Hydrology"'
        enable_feedback = True
        feedback_emails = ["someone@example.com"]  # noqa: RUF012  (as Tethys apps write it)
        root_url = "my-tethys-app"
        color = "#123456"
        exit_url = "/apps/"

        def url_maps(self):
            UrlMap = url_map_maker(self.root_url)
            return (UrlMap(name="home", url="my-tethys-app/home", controller="my_tethys_app.controllers.home"),)

        def permissions(self):
            return (PermissionGroup(name="admin", permissions=[Permission(name="edit", description="Edit")]),)

        def custom_settings(self):
            return (CustomSetting(name="answer", type=CustomSetting.TYPE_INTEGER, default=42),)

        def persistent_store_settings(self):
            return (PersistentStoreDatabaseSetting(name="primary_db", initializer="my_tethys_app.model.init"),)

    assert issubclass(MyApp, storekeeper.AppBase)
    app = MyApp()
    (url,) = app.url_maps()
    assert (url.name, url.path, url.controller) == (
        "home",
        "my-tethys-app/my-tethys-app/home",
        "my_tethys_app.controllers.home",
    )
    assert [p.name for p in app.permissions()[0].permissions] == ["edit"]
    assert app.unmanaged_settings() == [UnmanagedSetting("CustomSetting", "answer", "")]
    assert MyApp.get_custom_setting("answer") == 42
    with pytest.raises(KeyError, match="no custom setting"):
        MyApp.get_custom_setting("question")
    # The persistent store API is storekeeper's, with Tethys's names.
    for method in (
        "get_persistent_store_database",
        "get_persistent_store_connection",
        "get_persistent_store_engine",
        "create_persistent_store",
        "drop_persistent_store",
        "list_persistent_store_databases",
        "list_persistent_store_connections",
        "persistent_store_exists",
    ):
        assert getattr(MyApp, method).__func__ is vars(storekeeper.AppBase)[method].__func__


def test_a_custom_setting_without_a_default_has_no_value_here() -> None:
    from tethys_sdk.app_settings import CustomSetting
    from tethys_sdk.base import TethysAppBase

    class App(TethysAppBase):
        package = "valueless"

        def custom_settings(self):
            return (CustomSetting(name="max_dams", type=CustomSetting.TYPE_INTEGER, required=True),)

    with pytest.raises(LookupError, match="does not manage custom settings"):
        App.get_custom_setting("max_dams")


def test_a_setting_method_returning_something_else_says_which_method() -> None:
    from tethys_sdk.base import TethysAppBase

    class App(TethysAppBase):
        package = "odd_app"

        def scheduler_settings(self):
            return ("condor",)

    with pytest.raises(TypeError, match=r"App\.scheduler_settings\(\) returned 'condor'"):
        App().unmanaged_settings()


def test_an_app_class_without_package_takes_its_directory_name_in_the_tethysapp_namespace(tmp_path: Path) -> None:
    pkg = tmp_path / "tethysapp" / "nameless_app"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(
        "from tethys_sdk.base import TethysAppBase\n\n\nclass Nameless(TethysAppBase):\n    name = 'Nameless'\n"
    )
    code = "from tethysapp.nameless_app.app import Nameless; print(repr(Nameless.package))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "'nameless_app'"


def test_an_app_class_without_package_outside_the_namespace_keeps_none() -> None:
    from tethys_sdk.base import TethysAppBase

    class Loose(TethysAppBase):
        name = "Loose"

    assert Loose.package == ""


def test_routing_and_permission_decorators_return_the_function_unchanged() -> None:
    from tethys_sdk.permissions import login_required, permission_required
    from tethys_sdk.routing import consumer, controller, handler

    def view(request):
        return "page"

    for decorated in (
        controller(view),
        controller(name="home", url="home", login_required=False)(view),
        handler(view),
        handler(app_workspace=True)(view),
        consumer(view),
        login_required(view),
        login_required()(view),
        permission_required("add_dams", "edit_dams", use_or=True)(view),
    ):
        assert decorated is view


def test_has_permission_refuses_to_answer_rather_than_say_yes() -> None:
    from tethys_sdk.permissions import has_permission

    with pytest.raises(NotImplementedError, match="never answered yes"):
        has_permission(object(), "add_dams")


def test_tethys_test_case_calls_set_up_and_tear_down_and_refuses_django_helpers() -> None:
    from tethys_sdk.testing import TethysTestCase

    calls: list[str] = []

    class Case(TethysTestCase):
        def set_up(self):
            calls.append("set_up")

        def tear_down(self):
            calls.append("tear_down")

        def test_it(self):
            calls.append("test")
            with self.assertRaisesRegex(NotImplementedError, "Django"):
                self.create_test_user(username="joe", password="secret")
            with self.assertRaisesRegex(NotImplementedError, "Django"):
                self.get_test_client()

    result = unittest.TextTestRunner(stream=open(os.devnull, "w"), verbosity=0).run(Case("test_it"))  # noqa: SIM115
    assert result.wasSuccessful(), result.failures + result.errors
    assert calls == ["set_up", "test", "tear_down"]
    assert issubclass(TethysTestCase, unittest.TestCase)


def test_the_test_store_helpers_refuse_an_app_class_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from tethys_sdk.base import TethysAppBase
    from tethys_sdk.testing import TethysTestCase

    class Loose(TethysAppBase):
        name = "Loose"

    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    with pytest.raises(ValueError, match="app class Loose has no package"):
        TethysTestCase.create_test_persistent_stores_for_app(Loose)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"kind": "CustomSetting", "name": 7}, TypeError),
        ({"kind": None, "name": "max_dams"}, TypeError),
        ({"kind": "CustomSetting", "name": "max_dams", "description": b"x"}, TypeError),
        ({"kind": "", "name": "max_dams"}, ValueError),
        ({"kind": "CustomSetting", "name": ""}, ValueError),
    ],
)
def test_an_unmanaged_setting_is_text_only(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        UnmanagedSetting(**kwargs)  # type: ignore[arg-type]
