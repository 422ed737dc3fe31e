"""``storekeeper stores``: list every store; create and drop dynamic stores."""

from __future__ import annotations

import psycopg
import pytest

from storekeeper import stores
from tests.cli.helpers import as_json, fails, ok, process_fails
from tests.pg_server import require_postgis


def _exists(admin_conn, database):
    return admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is not None


def _by_name(rows):
    return {r["name"]: r for r in rows}


def test_list_before_sync_shows_declared_stores_not_existing(invoke, my_first_app):
    rows = _by_name(as_json(invoke("stores list my_first_app --json")))
    assert set(rows) == {"example_db", "spatial_db", "temp_db"}
    for row in rows.values():
        assert (row["exists"], row["initialized"], row["kind"], row["service"]) == (False, False, "static", "local")
    assert rows["spatial_db"]["spatial"] is True
    assert rows["example_db"]["spatial"] is False
    assert rows["example_db"]["database"] == "my_first_app_example_db"


def test_list_after_sync_shows_existing_initialized_stores(invoke, my_first_app, platform, postgis_available):
    require_postgis(postgis_available)
    stores.sync_stores(platform, ["my_first_app"])
    rows = _by_name(as_json(invoke("stores list my_first_app --json")))
    assert {(r["exists"], r["initialized"]) for r in rows.values()} == {(True, True)}
    out = ok(invoke("stores list my_first_app")).stdout
    assert "my_first_app_example_db" in out and "static" in out


def test_list_without_app_shows_every_apps_stores(invoke, my_first_app):
    rows = as_json(invoke("stores list --json"))
    assert {"my_first_app", "bench_app", "flaky_app"} <= {r["app"] for r in rows}
    bench = [r for r in rows if r["app"] == "bench_app"]
    assert len(bench) == 10
    assert all(r["service"] is None and r["exists"] is False for r in bench)


def test_list_unknown_app_is_an_error(invoke, service):
    fails(invoke("stores list no_such_app"), "no_such_app", "storekeeper apps list")


def test_create_then_drop_a_dynamic_store(invoke, my_first_app, admin_conn, pg, postgis_available):
    require_postgis(postgis_available)
    created = as_json(
        invoke(
            [
                "stores",
                "create",
                "my_first_app",
                "scenario_1",
                "--connection",
                "primary",
                "--spatial",
                "--initializer",
                "my_first_app.model.init_temp_db",
                "--json",
            ]
        )
    )
    assert (created["action"], created["first_time"], created["database"]) == (
        "created",
        True,
        "my_first_app_scenario_1",
    )
    assert _exists(admin_conn, "my_first_app_scenario_1")
    with psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname="my_first_app_scenario_1"
    ) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'").fetchone() == (1,)
        assert conn.execute("SELECT first_time FROM init_log").fetchall() == [(True,)]
    row = _by_name(as_json(invoke("stores list my_first_app --json")))["scenario_1"]
    assert (row["kind"], row["spatial"], row["exists"], row["initialized"]) == ("dynamic", True, True, True)

    again = as_json(invoke("stores create my_first_app scenario_1 --connection primary --json"))
    assert again["first_time"] is False

    fails(invoke("stores drop my_first_app scenario_1"), "--yes")
    assert _exists(admin_conn, "my_first_app_scenario_1")
    result = ok(invoke("stores drop my_first_app scenario_1 --yes"))
    assert "dropped" in result.stdout
    assert not _exists(admin_conn, "my_first_app_scenario_1")
    assert "scenario_1" not in _by_name(as_json(invoke("stores list my_first_app --json")))
    ok(invoke("stores drop my_first_app scenario_1 --yes"))  # idempotent


def test_create_text_output_names_the_database_and_service(invoke, my_first_app):
    out = ok(invoke("stores create my_first_app plain --connection primary")).stdout
    assert "my_first_app_plain" in out and "local" in out


def test_create_with_refresh_needs_yes(invoke, my_first_app, admin_conn):
    ok(invoke("stores create my_first_app plain --connection primary"))
    fails(invoke("stores create my_first_app plain --connection primary --refresh"), "--yes")
    assert (
        as_json(invoke("stores create my_first_app plain --connection primary --refresh --yes --json"))["action"]
        == "recreated"
    )


@pytest.mark.parametrize("name", ["Bad", "bad-name", "1st", "drop;table", "x" * 60])
def test_create_refuses_a_bad_name_stating_the_rule(invoke, my_first_app, admin_conn, name):
    err = fails(invoke(["stores", "create", "my_first_app", name, "--connection", "primary"]))
    assert "a-z" in err or "63" in err
    assert admin_conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'my_first_app_%'").fetchone() == (0,)


def test_create_through_a_database_setting_is_an_error(invoke, my_first_app):
    fails(invoke("stores create my_first_app scenario_1 --connection example_db"), "example_db", "connection")


def test_create_through_an_unassigned_connection_names_app_settings_set(invoke, service):
    fails(
        invoke("stores create my_first_app scenario_1 --connection primary"),
        "storekeeper app-settings set my_first_app primary",
    )


def test_create_with_unknown_connection_names_app_settings_list(invoke, my_first_app):
    fails(
        invoke("stores create my_first_app scenario_1 --connection nope"), "storekeeper app-settings list my_first_app"
    )


def test_drop_a_static_store_keeps_its_setting(invoke, my_first_app, admin_conn):
    ok(invoke("syncstores my_first_app --database temp_db"))
    ok(invoke("stores drop my_first_app temp_db --yes"))
    assert not _exists(admin_conn, "my_first_app_temp_db")
    row = _by_name(as_json(invoke("stores list my_first_app --json")))["temp_db"]
    assert (row["kind"], row["exists"], row["initialized"]) == ("static", False, False)


def test_real_process_drop_without_terminal_is_refused(run_cli, my_first_app, admin_conn):
    ok_create = run_cli("stores", "create", "my_first_app", "scenario_2", "--connection", "primary")
    assert ok_create.returncode == 0, ok_create.stderr
    process_fails(run_cli("stores", "drop", "my_first_app", "scenario_2", input=""), "--yes")
    assert _exists(admin_conn, "my_first_app_scenario_2")


def test_list_with_an_unreachable_service_shows_exists_unknown(invoke, platform, service):
    from storekeeper import apps, services
    from tests.cli.helpers import closed_port

    services.create_service(
        platform, name="deadend", host="127.0.0.1", port=closed_port(), username="x", password="y", connect_timeout=2
    )
    apps.assign_service(platform, "flaky_app", "db", "deadend")
    [row] = as_json(invoke("stores list flaky_app --json"))
    assert (row["service"], row["exists"]) == ("deadend", None)
    assert "unknown" in ok(invoke("stores list flaky_app")).stdout
