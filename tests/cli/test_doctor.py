"""``storekeeper doctor``: each kind of problem it claims to find, made to happen, and its --json shape."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from storekeeper import services, stores
from storekeeper.platform import Platform
from tests.cli.helpers import closed_port
from tests.core.conftest import make_service_user

EXAMPLE_DB = "my_first_app_example_db"


def doctor(run_cli: Any) -> tuple[int, dict[str, Any], str]:
    """Run ``storekeeper doctor --json`` and ``doctor`` as real processes: (exit code, document, text output)."""
    as_json = run_cli("doctor", "--json")
    text = run_cli("doctor")
    assert as_json.returncode == text.returncode, (as_json.stderr, text.stderr)
    assert "Traceback" not in as_json.stderr + text.stderr + text.stdout
    return as_json.returncode, json.loads(as_json.stdout), text.stdout


def finding(document: dict[str, Any], level: str, subject: str, needle: str) -> dict[str, Any]:
    """Return the one finding of ``level`` about ``subject`` whose message contains ``needle``."""
    found = [
        f for f in document["findings"] if f["level"] == level and f["subject"] == subject and needle in f["message"]
    ]
    assert len(found) == 1, json.dumps(document, indent=1)
    return found[0]


@pytest.fixture
def synced(platform: Platform, my_first_app: type) -> type:
    for name in ("example_db", "temp_db"):
        (result,) = stores.sync_stores(platform, ["my_first_app"], database=name)
        assert result.ok, result.error
    return my_first_app


def test_a_healthy_home_has_no_error_and_the_documented_json_shape(synced: type, run_cli: Any) -> None:
    code, document, text = doctor(run_cli)
    assert code == 0
    assert document["ok"] is True
    assert set(document) == {"ok", "findings"}
    for f in document["findings"]:
        assert set(f) == {"level", "subject", "message", "fix"}
        assert f["level"] in ("error", "warning", "info")
    assert not [f for f in document["findings"] if f["level"] == "error"]
    finding(document, "info", "my_first_app/example_db", "Ready on service local")
    finding(document, "info", "platform", "(head)")
    finding(document, "info", "service local", "stores reached as role per store")
    # The test server's user is a superuser: a warning, with the way out.
    assert "prepare-postgis local" in finding(document, "warning", "service local", "SUPERUSER")["fix"]
    assert "my_first_app/example_db: Ready on service local" in text
    assert "0 error(s)" in text


def test_a_store_recorded_as_made_but_missing_on_its_server_is_an_error_fixed_by_syncstores(
    synced: type, run_cli: Any, admin_conn: psycopg.Connection
) -> None:
    admin_conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(EXAMPLE_DB)))
    code, document, text = doctor(run_cli)
    assert code == 1 and document["ok"] is False
    f = finding(document, "error", "my_first_app/example_db", "missing")
    assert f["fix"] == "storekeeper syncstores my_first_app"
    assert "error   my_first_app/example_db: Recorded as made and initialized" in text
    assert "fix: storekeeper syncstores my_first_app" in text
    # The fix fixes it.
    assert run_cli("syncstores", "my_first_app", "--database", "example_db").returncode == 0
    code, document, _ = doctor(run_cli)
    assert code == 0, json.dumps(document, indent=1)


def test_a_database_left_invalid_by_a_cut_short_drop_is_an_error(
    synced: type, run_cli: Any, admin_conn: psycopg.Connection
) -> None:
    admin_conn.execute("UPDATE pg_database SET datconnlimit = -2 WHERE datname = %s", (EXAMPLE_DB,))
    code, document, _ = doctor(run_cli)
    assert code == 1
    f = finding(document, "error", "my_first_app/example_db", "drop was cut short")
    assert f["fix"] is not None and f["fix"].startswith("storekeeper syncstores my_first_app --database example_db")


def test_a_store_database_handed_to_another_owner_is_an_error(
    synced: type, run_cli: Any, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    admin_conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(sql.Identifier(EXAMPLE_DB)))
    code, document, _ = doctor(run_cli)
    assert code == 1
    f = finding(document, "error", "my_first_app/example_db", "not by the store's role")
    assert f["fix"] == "storekeeper syncstores my_first_app --database example_db"


def test_an_unreachable_service_is_an_error_naming_the_service(platform: Platform, run_cli: Any) -> None:
    services.create_service(platform, name="gone", host="127.0.0.1", port=closed_port(), username="u", password="p")
    code, document, _ = doctor(run_cli)
    assert code == 1
    (f,) = [f for f in document["findings"] if f["subject"] == "service gone"]
    assert f["level"] == "error"
    assert "gone" in f["message"] and f["fix"]


def test_a_service_that_cannot_create_roles_is_a_warning_and_its_stores_are_reached_as_it(
    platform: Platform, pg_admin_url: str, run_cli: Any, my_first_app: type
) -> None:
    make_service_user(platform, pg_admin_url, "limited", "sk_doctor_limited", "limited-pw", "LOGIN CREATEDB")
    from storekeeper import apps

    apps.assign_service(platform, "my_first_app", "temp_db", "limited")
    (result,) = stores.sync_stores(platform, ["my_first_app"], database="temp_db")
    assert result.ok, result.error
    _, document, _ = doctor(run_cli)
    assert "CREATEROLE" in finding(document, "warning", "service limited", "may not create roles")["fix"]
    finding(document, "warning", "my_first_app/temp_db", "reached as the service user")


def test_a_config_file_others_can_read_is_an_error_and_an_open_home_a_warning(
    sk_home: Path, platform: Platform, run_cli: Any
) -> None:
    config = sk_home / "config.yml"
    os.chmod(config, 0o644)
    os.chmod(sk_home, 0o755)
    code, document, _ = doctor(run_cli)
    assert code == 1
    f = finding(document, "error", "home", "readable by other users")
    assert f["fix"].startswith(f"chmod 600 {config}")
    assert finding(document, "warning", "home", "open to other users")["fix"] == f"chmod 700 {sk_home}"


def test_a_platform_database_behind_this_version_is_an_error_fixed_by_db_upgrade(
    sk_home: Path, platform: Platform, run_cli: Any
) -> None:
    with sqlite3.connect(sk_home / "platform.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004'")
    code, document, _ = doctor(run_cli)
    assert code == 1
    assert finding(document, "error", "platform", "at migration 0004")["fix"] == "storekeeper db upgrade"


def test_passwords_the_secret_key_cannot_decrypt_are_an_error(
    synced: type, sk_home: Path, run_cli: Any, platform: Platform
) -> None:
    from storekeeper.config import new_secret_key

    code, document, _ = doctor(run_cli)
    assert code == 0
    env = {"STOREKEEPER_SECRET_KEY": new_secret_key()}
    as_json = run_cli("doctor", "--json", env=env)
    assert as_json.returncode == 1, as_json.stderr
    document = json.loads(as_json.stdout)
    f = finding(document, "error", "home", "cannot be decrypted")
    assert 'service "local"' in f["message"]
    assert "storekeeper settings rotate-secret-key" in f["fix"]
    assert len(document["findings"]) == 3  # this error, home and platform fine; nothing else can be checked


def test_an_app_no_longer_installed_and_a_required_setting_without_service_are_warnings(
    my_first_app: type, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from importlib.metadata import EntryPoint

    from storekeeper import apps, discovery, doctor

    apps.reset_setting(platform, "my_first_app", "primary")  # unassigned again
    report = doctor.run(platform.config, platform=platform).to_dict()
    f = finding(report, "warning", "my_first_app/primary", "no service")
    assert f["fix"].startswith("storekeeper app-settings set my_first_app primary SERVICE")
    eps = [EntryPoint(name="bench_app", value="sample_apps.bench:App", group=discovery.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(discovery, "entry_points", lambda group: eps)
    monkeypatch.setattr(discovery, "NAMESPACES", ())
    discovery.forget()
    report = doctor.run(platform.config, platform=platform).to_dict()
    f = finding(report, "warning", "my_first_app", "no longer installed")
    assert f["fix"].startswith("storekeeper apps remove my_first_app")


def test_a_store_with_migrations_pending_is_a_warning_and_one_at_an_unknown_revision_an_error(
    platform: Platform, service: str, run_cli: Any, pg_admin_url: str
) -> None:
    from storekeeper import apps
    from storekeeper.stores import migrations
    from tests.core.conftest import rows

    for setting in ("primary", "db"):
        apps.assign_service(platform, "migrating_app", setting, service)
    assert stores.sync_stores(platform, ["migrating_app"], database="db")[0].ok
    _, document, _ = doctor(run_cli)
    finding(document, "info", "migrating_app/db", "At its migrations' head (0003)")
    migrations.migrate(platform, "migrating_app", "db", to="0002")
    _, document, _ = doctor(run_cli)
    f = finding(document, "warning", "migrating_app/db", "1 migration(s) pending (0003)")
    assert f["fix"] == "storekeeper syncstores migrating_app --database db"
    rows(pg_admin_url, "migrating_app_db", "UPDATE alembic_version SET version_num = 'ffff9999' RETURNING 1")
    code, document, _ = doctor(run_cli)
    assert code == 1
    f = finding(document, "error", "migrating_app/db", "ffff9999")
    assert "--stamp REV" in f["fix"]


def test_pools_that_do_not_fit_max_connections_are_a_warning(
    platform: Platform, run_cli: Any, my_first_app: type
) -> None:
    services.update_service(platform, "local", pool_size=60)  # 5 assigned settings x 60 > max_connections
    _, document, _ = doctor(run_cli)
    f = finding(document, "warning", "service local", "connections per process")
    assert f["fix"].startswith("storekeeper services update local --pool-size")


def test_an_unreachable_platform_database_is_an_error_and_nothing_else_is_checked(sk_home: Path, run_cli: Any) -> None:
    url = f"postgresql+psycopg://nobody:pw@127.0.0.1:{closed_port()}/storekeeper"
    result = run_cli("doctor", "--json", env={"STOREKEEPER_DATABASE_URL": url})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    (f,) = [f for f in document["findings"] if f["level"] == "error"]
    assert f["subject"] == "platform" and "reach" in f["message"].lower()
    assert "nobody:pw" not in result.stdout  # never a password
    assert not [f for f in document["findings"] if f["subject"].startswith("service ")]
