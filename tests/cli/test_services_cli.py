"""``storekeeper services``: register, show, change, test and remove database servers."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from psycopg import sql

from tests.cli.helpers import as_json, closed_port, fails, ok, process_fails


def _create(invoke, name, connection, *extra, input=None):
    return invoke(["services", "create", "persistent", "--name", name, "--connection", connection, *extra], input=input)


def test_create_with_connection_never_shows_the_password(invoke, pg, postgis_available):
    outputs = [ok(_create(invoke, "db1", pg.connection)).output]
    assert "db1" in outputs[0]
    for args in (
        "services list",
        "services list --json",
        "services show db1",
        "services show db1 --json",
        "services test db1",
        "services test db1 --json",
    ):
        outputs.append(ok(invoke(args)).output)
    for out in outputs:
        assert pg.password not in out
    shown = as_json(invoke("services show db1 --json"))
    assert shown["has_password"] is True
    assert (shown["host"], shown["port"], shown["username"]) == (pg.host, pg.port, pg.user)
    assert shown["maintenance_db"] == "postgres"
    assert "password" not in shown


def test_create_json_output_is_parseable_and_hides_the_password(invoke, pg):
    result = ok(_create(invoke, "db1", pg.connection, "--json"))
    assert pg.password not in result.output
    assert json.loads(result.stdout)["name"] == "db1"


def test_create_with_url(invoke, pg):
    ok(invoke(["services", "create", "persistent", "--name", "byurl", "--url", pg.url]))
    shown = as_json(invoke("services show byurl --json"))
    assert (shown["host"], shown["port"], shown["username"], shown["maintenance_db"]) == (
        pg.host,
        pg.port,
        pg.user,
        "postgres",
    )
    assert ok(invoke("services test byurl")).exit_code == 0


def test_password_left_out_of_connection_is_read_from_stdin(invoke, pg):
    result = ok(_create(invoke, "db1", pg.connection_without_password, "--password-stdin", input=pg.password + "\n"))
    assert pg.password not in result.output
    report = as_json(invoke("services test db1 --json"))
    assert report["server_version"]


def test_password_left_out_without_terminal_is_refused(invoke, pg):
    fails(_create(invoke, "db1", pg.connection_without_password), "--password-stdin")
    assert as_json(invoke("services list --json")) == []


@pytest.fixture
def odd_role(admin_conn):
    """A role whose password holds '@', ':' and '%', to check how --connection is split."""
    name, password = "sk_cli_odd_user", "p@ss:w%rd@x"
    admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    admin_conn.execute(
        sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
    )
    yield name, password
    admin_conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_connection_splits_at_last_at_sign_and_first_colon(invoke, pg, odd_role):
    user, password = odd_role
    ok(_create(invoke, "raw", f"{user}:{password}@{pg.host}:{pg.port}"))
    ok(_create(invoke, "encoded", f"{quote(user)}:{quote(password, safe='')}@{pg.host}:{pg.port}"))
    for name in ("raw", "encoded"):
        result = ok(invoke(f"services test {name} --json"))
        assert password not in result.output
        report = json.loads(result.stdout)
        assert report["can_create_database"] is True
        assert report["superuser"] is False


def test_duplicate_name_is_an_error(invoke, pg):
    ok(_create(invoke, "db1", pg.connection))
    fails(_create(invoke, "db1", pg.connection), "db1", "already exists")
    assert [s["name"] for s in as_json(invoke("services list --json"))] == ["db1"]


@pytest.mark.parametrize(
    ("connection", "needle"),
    [
        ("postgres-localhost-5432", "@"),
        ("postgres@localhost:notaport", "notaport"),
        ("postgres@localhost:70000", "70000"),
        ("@localhost:5432", "user"),
    ],
)
def test_bad_connection_is_an_error(invoke, connection, needle):
    fails(_create(invoke, "db1", connection), needle)
    assert as_json(invoke("services list --json")) == []


@pytest.mark.parametrize(
    "connection", ["postgres:Sup3rSecretPw@localhost:port", "postgres:Sup3rSecretPw-localhost:5432"]
)
def test_bad_connection_error_masks_the_password(invoke, connection):
    err = fails(_create(invoke, "db1", connection))
    assert "Sup3rSecretPw" not in err


def test_connection_and_url_together_are_refused(invoke, pg):
    fails(
        invoke(["services", "create", "persistent", "--name", "db1", "--connection", pg.connection, "--url", pg.url]),
        "--connection",
        "--url",
    )
    fails(invoke(["services", "create", "persistent", "--name", "db1"]), "--connection")


def test_bad_service_name_is_refused(invoke, pg):
    fails(_create(invoke, "Bad Name", pg.connection))


def test_list_shows_services_and_their_assignments(invoke, my_first_app, pg):
    out = ok(invoke("services list")).stdout
    assert "local" in out and str(pg.port) in out
    [svc] = as_json(invoke("services list --json"))
    assert svc["name"] == "local"
    assert "my_first_app/example_db" in svc["assigned"]


def test_list_without_services_says_how_to_add_one(invoke):
    assert "services create persistent" in ok(invoke("services list")).stdout


def test_show_unknown_service_names_services_list(invoke):
    fails(invoke("services show nope"), "nope", "storekeeper services list")


def test_update_changes_connection_details(invoke, service):
    ok(invoke("services update local --pool-size 7 --connect-timeout 5 --sslmode disable"))
    shown = as_json(invoke("services show local --json"))
    assert (shown["pool_size"], shown["connect_timeout"], shown["sslmode"]) == (7, 5, "disable")


def test_update_rejects_a_bad_value(invoke, service):
    fails(invoke("services update local --sslmode sometimes"), "sslmode")
    fails(invoke("services update local --pool-size 0"), "pool_size")
    assert as_json(invoke("services show local --json"))["pool_size"] == 3


def test_update_password_from_stdin(invoke, service, pg):
    ok(invoke("services update local --password-stdin", input="wrong-password\n"))
    err = fails(invoke("services test local"), 'service "local"')
    assert "wrong-password" not in err
    ok(invoke("services update local --password-stdin", input=pg.password + "\n"))
    ok(invoke("services test local"))


def test_update_password_prompt_without_terminal_names_password_stdin(invoke, service):
    fails(invoke("services update local --password"), "--password-stdin")


def test_remove_is_refused_while_assigned_and_the_hint_names_force(invoke, my_first_app):
    fails(invoke("services remove local --yes"), "my_first_app/example_db", "--force")
    assert [s["name"] for s in as_json(invoke("services list --json"))] == ["local"]


def test_remove_force_unassigns_the_settings(invoke, my_first_app):
    result = ok(invoke("services remove local --force --yes"))
    assert "app-settings set my_first_app example_db" in result.stderr
    assert as_json(invoke("services list --json")) == []
    settings = as_json(invoke("app-settings list my_first_app --json"))
    assert all(s["service"] is None for s in settings)


def test_remove_without_yes_is_refused_without_a_terminal(invoke, service):
    fails(invoke("services remove local"), "--yes")
    assert [s["name"] for s in as_json(invoke("services list --json"))] == ["local"]
    ok(invoke("services remove local --yes"))
    assert as_json(invoke("services list --json")) == []


def test_remove_unknown_service_is_an_error(invoke):
    fails(invoke("services remove nope --yes"), "nope")


def test_test_reports_version_privileges_and_postgis(invoke, service, postgis_available):
    from tests.pg_server import require_postgis

    report = as_json(invoke("services test local --json"))
    assert report["server_version"]
    assert report["can_create_database"] is True
    assert {"can_create_role", "can_create_postgis", "max_connections", "pool_connections_per_process"} <= set(report)
    out = ok(invoke("services test local")).stdout
    assert "PostgreSQL " + report["server_version"] in out
    assert "PostGIS" in out
    require_postgis(postgis_available)
    assert report["postgis_version"]
    assert report["can_create_postgis"] is True
    assert report["postgis_path"] == "direct" and report["postgis_hint"] is None
    assert "PostGIS path" in out and "direct" in out


def test_unreachable_service_fails_naming_the_service(invoke, run_cli):
    port = closed_port()
    ok(_create(invoke, "deadend", f"someone:Pw-never-shown@127.0.0.1:{port}", "--connect-timeout", "2"))
    fails(invoke("services test deadend"), 'service "deadend"', "services update deadend")
    err = process_fails(run_cli("services", "test", "deadend"), 'service "deadend"', f"127.0.0.1:{port}")
    assert "Pw-never-shown" not in err
    process_fails(run_cli("services", "test", "deadend", "--json"), "deadend")


def test_changed_secret_key_names_the_service_and_the_fix(invoke, run_cli, service):
    ok(invoke(["settings", "--set", "secret_key", "another-long-random-secret-key-0123456789"]))
    process_fails(
        run_cli("services", "test", "local"), 'service "local"', "storekeeper services update local --password-stdin"
    )


def test_test_counts_the_pool_connections_of_assigned_settings(invoke, my_first_app):
    report = as_json(invoke("services test local --json"))
    assert report["assigned_settings"] == 5
    assert report["pool_size"] == 3
    assert report["pool_connections_per_process"] == 15
    assert report["max_connections"] > 0


def test_update_maintenance_database_and_username(invoke, service, pg):
    ok(invoke("services update local --maintenance-db template1"))
    shown = as_json(invoke("services show local --json"))
    assert shown["maintenance_db"] == "template1"
    ok(invoke("services test local"))
    ok(invoke("services update local --username nobody_here"))
    fails(invoke("services test local"), 'service "local"')
    ok(invoke(["services", "update", "local", "--username", pg.user, "--maintenance-db", "postgres"]))
    ok(invoke("services test local"))


def test_remove_on_a_terminal_asks_first(sk_home, service):
    import os

    from tests.cli.helpers import run_in_terminal

    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "COLUMNS": "200"}
    code, screen = run_in_terminal(["services", "remove", "local"], "n", env)
    assert code == 1, screen
    assert "Continue?" in screen
    code, screen = run_in_terminal(["services", "remove", "local"], "y", env)
    assert code == 0, screen
    assert "removed" in screen
