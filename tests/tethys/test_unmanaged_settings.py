"""Settings storekeeper does not manage (a Tethys app's custom settings, services, schedulers) are listed as such."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

from storekeeper import users
from storekeeper.config import load_config
from storekeeper.platform import Platform
from storekeeper.portal import auth

NOTE = "declared, not managed by storekeeper"
#: Names no SQL identifier would allow; they are only shown, so they are shown as written.
ODD_NAME = "[bold red]max dams[/] '; DROP TABLE x; --"
ODD_DESCRIPTION = "ünïcödé [link=https://example.com]click[/link] $(rm -rf /)"

ODD_APP = f"""
from tethys_sdk.app_settings import CustomSetting, PersistentStoreDatabaseSetting, SchedulerSetting
from tethys_sdk.base import TethysAppBase


class OddNames(TethysAppBase):
    name = "Odd Names"
    package = "odd_names"

    def custom_settings(self):
        return (
            CustomSetting(name={ODD_NAME!r}, type=CustomSetting.TYPE_STRING, description={ODD_DESCRIPTION!r}),
            CustomSetting(name="max_dams", type="not a type Tethys knows", required=False),
        )

    def scheduler_settings(self):
        return (SchedulerSetting(name="condor", engine=SchedulerSetting.HTCONDOR, description="Jobs."),)

    def persistent_store_settings(self):
        return (PersistentStoreDatabaseSetting(name="primary_db", initializer="odd_names.model.init_db"),)
"""

BROKEN_APP = """
from tethys_sdk.base import TethysAppBase


class Broken(TethysAppBase):
    name = "Broken"
    package = "broken_settings"

    def custom_settings(self):
        raise RuntimeError("cannot read settings.json")
"""


def _namespace_app(root: Path, package: str, source: str) -> None:
    pkg = root / "tethysapp" / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text(source)


@pytest.fixture
def extra_apps(tmp_path: Path) -> dict[str, str]:
    """Environment putting two more namespace apps on the path: odd_names and broken_settings."""
    root = tmp_path / "extra"
    _namespace_app(root, "odd_names", ODD_APP)
    _namespace_app(root, "broken_settings", BROKEN_APP)
    return {"PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def test_apps_show_lists_a_tethys_apps_custom_setting_as_not_managed(run_cli) -> None:
    text = run_cli("apps", "show", "dam_inventory")
    assert text.returncode == 0, text.stderr
    assert f"Other settings ({NOTE})" in text.stdout
    assert "CustomSetting" in text.stdout
    assert "How many dams the inventory may hold." in text.stdout
    data = json.loads(run_cli("apps", "show", "dam_inventory", "--json").stdout)
    assert data["unmanaged_settings"] == [
        {
            "kind": "CustomSetting",
            "name": "max_dams",
            "description": "How many dams the inventory may hold.",
            "note": NOTE,
        }
    ]
    # The store setting is the one storekeeper manages.
    assert [s["name"] for s in data["settings"]] == ["primary_db"]


def test_apps_show_json_lists_every_kind_in_declaration_order(run_cli) -> None:
    data = json.loads(run_cli("apps", "show", "flood_points", "--json").stdout)
    assert [(u["kind"], u["name"]) for u in data["unmanaged_settings"]] == [
        ("CustomSetting", "buffer_meters"),
        ("SpatialDatasetServiceSetting", "primary_geoserver"),
    ]
    assert sorted(s["name"] for s in data["settings"]) == ["flood_db", "primary"]


def test_an_app_without_unmanaged_settings_shows_none(run_cli) -> None:
    text = run_cli("apps", "show", "my_first_app")
    assert text.returncode == 0, text.stderr
    assert NOTE not in text.stdout
    assert json.loads(run_cli("apps", "show", "my_first_app", "--json").stdout)["unmanaged_settings"] == []


def test_odd_setting_names_are_shown_as_written_never_as_markup(run_cli, extra_apps: dict[str, str]) -> None:
    data = json.loads(run_cli("apps", "show", "odd_names", "--json", env=extra_apps).stdout)
    assert [(u["kind"], u["name"], u["description"]) for u in data["unmanaged_settings"]] == [
        ("CustomSetting", ODD_NAME, ODD_DESCRIPTION),
        ("CustomSetting", "max_dams", ""),
        ("SchedulerSetting", "condor", "Jobs."),
    ]
    text = run_cli("apps", "show", "odd_names", env={**extra_apps, "COLUMNS": "400"})
    assert text.returncode == 0, text.stderr
    assert ODD_NAME in text.stdout  # Rich markup in a name is printed, not applied
    assert ODD_DESCRIPTION in text.stdout


def test_an_app_whose_settings_method_raises_is_a_listed_problem_not_a_broken_listing(
    run_cli, extra_apps: dict[str, str]
) -> None:
    listed = run_cli("apps", "list", "--json", env=extra_apps)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert {"dam_inventory", "flood_points", "odd_names"} <= {a["package"] for a in data["apps"]}
    (problem,) = [p for p in data["problems"] if p["entry_point"] == "broken_settings"]
    assert (
        'App "broken_settings": unmanaged_settings() raised RuntimeError: cannot read settings.json'
        in problem["message"]
    )
    shown = run_cli("apps", "show", "broken_settings", env=extra_apps)
    assert shown.returncode != 0
    assert 'App "broken_settings": unmanaged_settings() raised RuntimeError: cannot read settings.json' in shown.stderr


def test_the_rest_app_resource_lists_unmanaged_settings(platform: Platform) -> None:
    from storekeeper.portal.app import create_app

    with warnings.catch_warnings():  # Starlette prefers the httpx2 fork for its TestClient; httpx works the same
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    users.upsert_user(platform, "admin", "admin-password-1", role="admin")
    token = auth.create_token(platform, "admin", "tests")[1]
    with TestClient(create_app(load_config()), headers={"Authorization": f"Bearer {token}"}) as client:
        one = client.get("/api/v1/apps/dam_inventory")
        assert one.status_code == 200, one.text
        assert one.json()["unmanaged_settings"] == [
            {
                "kind": "CustomSetting",
                "name": "max_dams",
                "description": "How many dams the inventory may hold.",
                "note": NOTE,
            }
        ]
        listed = client.get("/api/v1/apps").json()["apps"]
        by_package = {a["package"]: a for a in listed}
        assert [u["name"] for u in by_package["flood_points"]["unmanaged_settings"]] == [
            "buffer_meters",
            "primary_geoserver",
        ]
        assert by_package["my_first_app"]["unmanaged_settings"] == []
