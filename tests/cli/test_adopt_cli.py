"""``storekeeper apps adopt``: taking over databases Tethys made, in place, data and all.

Each test makes the databases by hand the way Tethys Platform does (as the
service's superuser, named ``<app>_<setting>``, no comment, PostGIS in a spatial
one, tables and rows made by the app's initializer), then adopts them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from psycopg import sql
from sqlalchemy import text

from storekeeper import apps
from tests.cli.helpers import as_json, fails, ok, process_fails, process_ok, run_in_terminal
from tests.conftest import TEST_INSTALLATION, storekeeper_exe
from tests.pg_server import require_postgis
from tests.tethys_dbs import comment, connect, make_tethys_db, one, owner

APP = "my_first_app"
EXAMPLE, SPATIAL = f"{APP}_example_db", f"{APP}_spatial_db"


@pytest.fixture
def tethys_app(platform, my_first_app, admin_conn):
    """my_first_app with temp_db unassigned: only example_db and spatial_db are adopted."""
    apps.reset_setting(platform, APP, "temp_db")
    for role in (EXAMPLE, SPATIAL):  # roles outlive the databases other tests dropped: start without them
        if admin_conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            admin_conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin_conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    return my_first_app


def table_owners(pg, database):
    with connect(pg, database) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'S') AND c.relname <> 'spatial_ref_sys'"
        ).fetchall()
    return dict(rows)


def store_state(invoke, name):
    listed = as_json(invoke(f"stores list {APP} --json"))
    return next(s for s in listed if s["name"] == name)


def audit_actions(invoke):
    return [(e["action"], e["target"], e["outcome"]) for e in as_json(invoke("audit --json"))]


# -- adopting ------------------------------------------------------------------------------


def test_adopt_takes_over_tethys_databases_in_place_and_a_sync_keeps_the_data(
    tethys_app, run_cli, invoke, admin_conn, pg, postgis_available
):
    require_postgis(postgis_available)
    make_tethys_db(admin_conn, pg, EXAMPLE)
    make_tethys_db(admin_conn, pg, SPATIAL, spatial=True)

    data = json.loads(process_ok(run_cli("apps", "adopt", APP, "--yes", "--json")).stdout)

    assert data["ok"] is True
    by_store = {r["store"]: r for r in data["results"]}
    assert by_store["example_db"]["action"] == "adopted"
    assert sorted(by_store["example_db"]["tables"]) == ["init_log", "stream_gages"]
    assert by_store["spatial_db"]["action"] == "adopted"
    assert by_store["spatial_db"]["postgis"]
    assert by_store["temp_db"]["action"] == "skipped (no service assigned)"
    for database, store in ((EXAMPLE, "example_db"), (SPATIAL, "spatial_db")):
        assert owner(admin_conn, database) == database  # the store's own role
        assert set(table_owners(pg, database).values()) == {database}  # tables and their sequences
        assert (
            comment(admin_conn, database) == f"storekeeper:initialized {APP}/{store} installation={TEST_INSTALLATION}"
        )
        assert store_state(invoke, store)["ready"] is True
    # The app reaches them as their own roles, and may read and write (sequences too).
    engine = tethys_app.get_persistent_store_database("example_db")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar() == EXAMPLE
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar() == 3
        conn.execute(text("INSERT INTO stream_gages (latitude, longitude, value) VALUES (40.3, -111.6, 4)"))
    with tethys_app.get_persistent_store_database("spatial_db").begin() as conn:
        conn.execute(text("INSERT INTO places (name, geom) VALUES ('Orem', 'SRID=4326;POINT(-111.69 40.29)')"))
        assert conn.execute(text("SELECT count(*) FROM places WHERE ST_Y(geom) > 40")).scalar() == 2
    assert ("store.adopt", f"{APP}/example_db", "ok") in audit_actions(invoke)

    # A sync afterwards keeps every row and runs the initializers with first_time=False.
    synced = json.loads(process_ok(run_cli("syncstores", APP, "--database", "example_db", "--json")).stdout)
    assert [(r["action"], r["first_time"]) for r in synced["results"]] == [("initializer ran", False)]
    process_ok(run_cli("syncstores", APP, "--database", "spatial_db"))
    with connect(pg, EXAMPLE) as conn:
        assert one(conn, "SELECT count(*) FROM stream_gages") == 4
        assert conn.execute("SELECT first_time FROM init_log ORDER BY id").fetchall() == [(True,), (False,)]
    with connect(pg, SPATIAL) as conn:
        assert one(conn, "SELECT count(*) FROM places") == 2
        assert conn.execute("SELECT first_time FROM init_log ORDER BY id").fetchall() == [(True,), (False,)]


def test_dry_run_says_what_would_happen_and_changes_nothing(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    before = audit_actions(invoke)

    result = ok(invoke(f"apps adopt {APP} --database example_db --dry-run"))

    assert "would adopt" in result.stdout
    assert "2 table(s): init_log, stream_gages" in result.stdout
    assert "dry run: nothing changed" in result.stdout
    assert comment(admin_conn, EXAMPLE) is None
    assert owner(admin_conn, EXAMPLE) == pg.user
    assert set(table_owners(pg, EXAMPLE).values()) == {pg.user}
    assert one(admin_conn, "SELECT count(*) FROM pg_roles WHERE rolname = %s", EXAMPLE) == 0
    assert store_state(invoke, "example_db")["state"] == "absent"
    assert audit_actions(invoke) == before


def test_adopting_again_changes_nothing(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    ok(invoke(f"apps adopt {APP} --database example_db --yes"))
    marked = comment(admin_conn, EXAMPLE)

    again = as_json(invoke(f"apps adopt {APP} --database example_db --yes --json"))

    assert [(r["action"], r["ok"]) for r in again["results"]] == [("already adopted", True)]
    assert comment(admin_conn, EXAMPLE) == marked
    assert store_state(invoke, "example_db")["ready"] is True


def test_a_store_storekeeper_made_counts_as_already_adopted(tethys_app, invoke):
    ok(invoke(f"syncstores {APP} --database example_db"))
    again = as_json(invoke(f"apps adopt {APP} --database example_db --json"))
    assert [r["action"] for r in again["results"]] == ["already adopted"]


def test_without_a_terminal_it_needs_yes_and_changes_nothing(tethys_app, run_cli, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    proc = run_cli("apps", "adopt", APP, "--database", "example_db")
    process_fails(proc, "needs confirmation", "--yes")
    assert "would adopt" in proc.stdout  # what it would have done, checked before asking
    assert comment(admin_conn, EXAMPLE) is None
    assert owner(admin_conn, EXAMPLE) == pg.user


def test_on_a_terminal_it_shows_what_it_would_do_and_asks_first(tethys_app, sk_home, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "COLUMNS": "200"}
    args = ["apps", "adopt", APP, "--database", "example_db"]

    code, screen = run_in_terminal(args, "n", env)
    assert code == 1, screen
    assert "would adopt" in screen and "Continue?" in screen
    assert comment(admin_conn, EXAMPLE) is None

    code, screen = run_in_terminal(args, "y", env)
    assert code == 0, screen
    assert "adopted (database my_first_app_example_db on local)" in screen
    assert owner(admin_conn, EXAMPLE) == EXAMPLE


def test_a_postgis_database_of_a_plain_setting_is_adopted_with_a_note(
    tethys_app, invoke, admin_conn, pg, postgis_available
):
    require_postgis(postgis_available)
    make_tethys_db(admin_conn, pg, EXAMPLE, spatial=True)
    result = ok(invoke(f"apps adopt {APP} --database example_db --yes"))
    assert "is installed, though the setting is not spatial" in result.stderr + result.stdout
    assert comment(admin_conn, EXAMPLE).startswith("storekeeper:initialized ")


# -- refusals --------------------------------------------------------------------------------


def test_another_installations_database_is_refused_and_left_alone(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    foreign = f"storekeeper:initialized {APP}/example_db installation=someone-else"
    admin_conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(EXAMPLE), sql.Literal(foreign)))

    result = invoke(f"apps adopt {APP} --database example_db --yes")

    fails(result, "another storekeeper installation", "someone-else", EXAMPLE)
    assert comment(admin_conn, EXAMPLE) == foreign
    assert owner(admin_conn, EXAMPLE) == pg.user
    assert ("store.adopt", f"{APP}/example_db", "error") in audit_actions(invoke)


def test_another_stores_database_is_refused(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    other = f"storekeeper:initialized links/links installation={TEST_INSTALLATION}"
    admin_conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(EXAMPLE), sql.Literal(other)))
    fails(invoke(f"apps adopt {APP} --database example_db --yes"), 'belongs to store "links" of app "links"')
    assert comment(admin_conn, EXAMPLE) == other


def test_a_missing_database_names_the_command_that_makes_it(tethys_app, invoke):
    err = fails(invoke(f"apps adopt {APP} --database example_db --yes"), f"there is no database {EXAMPLE}")
    assert f"storekeeper syncstores {APP} --database example_db" in err
    assert 'service "local"' in err


def test_an_unassigned_setting_names_the_command_that_assigns_it(tethys_app, invoke):
    fails(invoke(f"apps adopt {APP} --database temp_db"), "has no service assigned", "storekeeper app-settings set")


def test_an_app_that_is_not_installed_is_refused(platform, service, run_cli):
    process_fails(run_cli("apps", "adopt", "no_such_app", "--yes"), 'App "no_such_app" is not installed')


@pytest.mark.parametrize(
    "args",
    [
        ["apps", "adopt", 'x"; DROP DATABASE postgres; --', "--yes"],
        ["apps", "adopt", APP, "--database", "example_db'; DROP ROLE postgres; --", "--yes"],
        ["apps", "adopt", "../../etc", "--dry-run"],
    ],
)
def test_hostile_names_are_refused_before_any_sql(tethys_app, run_cli, args, admin_conn):
    process_fails(run_cli(*args))
    assert one(admin_conn, "SELECT count(*) FROM pg_database WHERE datname = 'postgres'") == 1


def test_an_empty_database_is_refused_with_the_way_to_make_it_afresh(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE, tables=False)
    fails(invoke(f"apps adopt {APP} --database example_db --yes"), "has no tables", "DROP DATABASE", "syncstores")
    assert comment(admin_conn, EXAMPLE) is None


def test_a_spatial_setting_without_postgis_is_refused(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, SPATIAL)
    fails(
        invoke(f"apps adopt {APP} --database spatial_db --yes"), "PostGIS is not installed", "CREATE EXTENSION postgis"
    )
    assert comment(admin_conn, SPATIAL) is None


def test_tables_owned_by_another_role_are_refused_with_the_fix(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    admin_conn.execute("DROP ROLE IF EXISTS adopt_test_other")
    admin_conn.execute("CREATE ROLE adopt_test_other")
    try:
        with connect(pg, EXAMPLE) as conn:
            conn.execute("ALTER TABLE stream_gages OWNER TO adopt_test_other")
        fails(
            invoke(f"apps adopt {APP} --database example_db --yes"),
            "stream_gages (owner adopt_test_other)",
            'REASSIGN OWNED BY "adopt_test_other" TO',
        )
        assert comment(admin_conn, EXAMPLE) is None
    finally:
        admin_conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(EXAMPLE)))
        admin_conn.execute("DROP ROLE IF EXISTS adopt_test_other")


def test_one_refusal_does_not_stop_the_other_stores(tethys_app, invoke, admin_conn, pg):
    make_tethys_db(admin_conn, pg, EXAMPLE)  # spatial_db is missing
    result = invoke(f"apps adopt {APP} --yes --json")
    assert result.exit_code == 1
    by_store = {r["store"]: r for r in json.loads(result.stdout)["results"]}
    assert by_store["example_db"]["action"] == "adopted"
    assert by_store["spatial_db"]["ok"] is False
    assert f"syncstores {APP} --database spatial_db" in by_store["spatial_db"]["hint"]


# -- killed mid-way -------------------------------------------------------------------------


def _kill_when(pg, proc, pattern, timeout=60):
    """SIGKILL ``proc`` once one of its backends waits on a lock running a statement like ``pattern``."""
    deadline = time.monotonic() + timeout
    with connect(pg, "postgres") as watch:
        while time.monotonic() < deadline and proc.poll() is None:
            pids = [
                r[0]
                for r in watch.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                    (pattern,),
                ).fetchall()
            ]
            if pids:
                proc.kill()
                proc.wait()
                for pid in pids:  # the statement it was waiting to run never runs
                    watch.execute("SELECT pg_terminate_backend(%s)", (pid,))
                return
            time.sleep(0.005)
    proc.kill()
    raise AssertionError(f"the adoption never reached {pattern!r}: {proc.communicate()}")


@pytest.mark.parametrize("next_command", ["adopt", "syncstores"])
@pytest.mark.parametrize("point", ["marker", "moving tables"])
def test_a_kill_9_mid_adoption_is_finished_by_the_next_adopt_or_sync(
    tethys_app, sk_home, run_cli, invoke, admin_conn, pg, point, next_command
):
    make_tethys_db(admin_conn, pg, EXAMPLE)
    holder = connect(pg, EXAMPLE if point == "moving tables" else "postgres")
    holder.execute("BEGIN")
    if point == "moving tables":  # the database and role are handed over; the tables wait
        holder.execute("LOCK TABLE init_log, stream_gages IN ACCESS EXCLUSIVE MODE")
        pattern = "ALTER TABLE%OWNER TO%"
    else:  # the first marker waits: nothing is changed yet
        holder.execute("LOCK TABLE pg_catalog.pg_shdescription IN EXCLUSIVE MODE")
        pattern = "COMMENT ON DATABASE%"
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home)}
    proc = subprocess.Popen(
        [storekeeper_exe(), "apps", "adopt", APP, "--database", "example_db", "--yes"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _kill_when(pg, proc, pattern)
    finally:
        holder.close()

    # Killed: never listed ready, never recreated, no row lost.
    listed = store_state(invoke, "example_db")
    assert listed["ready"] is not True and listed["initialized"] is False
    with connect(pg, EXAMPLE) as conn:
        assert one(conn, "SELECT count(*) FROM stream_gages") == 3
    if point == "moving tables":
        assert comment(admin_conn, EXAMPLE) == f"storekeeper:adopting {APP}/example_db installation={TEST_INSTALLATION}"
        assert owner(admin_conn, EXAMPLE) == EXAMPLE

    if next_command == "adopt":
        process_ok(run_cli("apps", "adopt", APP, "--database", "example_db", "--yes"))
    elif point == "marker":  # nothing was taken over: a sync still refuses a database it did not make
        process_fails(
            run_cli("syncstores", APP, "--database", "example_db"),
            "was not created by storekeeper",
            f"storekeeper apps adopt {APP} --database example_db",  # the way to take it over
        )
        process_ok(run_cli("apps", "adopt", APP, "--database", "example_db", "--yes"))
    else:
        synced = json.loads(process_ok(run_cli("syncstores", APP, "--database", "example_db", "--json")).stdout)
        assert synced["results"][0]["action"].startswith("adopted (finished")

    assert comment(admin_conn, EXAMPLE) == f"storekeeper:initialized {APP}/example_db installation={TEST_INSTALLATION}"
    assert owner(admin_conn, EXAMPLE) == EXAMPLE
    assert set(table_owners(pg, EXAMPLE).values()) == {EXAMPLE}
    assert store_state(invoke, "example_db")["ready"] is True
    with connect(pg, EXAMPLE) as conn:
        assert one(conn, "SELECT count(*) FROM stream_gages") == 3


# -- a service user that is not a superuser ---------------------------------------------------


def test_a_createrole_user_that_owns_the_database_adopts_it_and_a_stranger_is_refused(
    platform, tethys_app, invoke, admin_conn, pg, pg_admin_url
):
    from tests.core.conftest import drop_service_user, make_service_user

    owner_user, stranger = "adopt_tethys_owner", "adopt_tethys_stranger"
    make_service_user(platform, pg_admin_url, "tethys", owner_user, "owner-pw-1", "LOGIN CREATEDB CREATEROLE")
    make_service_user(platform, pg_admin_url, "stranger", stranger, "stranger-pw-1", "LOGIN CREATEDB CREATEROLE")
    try:
        # Tethys's service user made the database and its tables, as Tethys does.
        with connect(pg, "postgres", user=owner_user, password="owner-pw-1") as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EXAMPLE)))
        with connect(pg, EXAMPLE, user=owner_user, password="owner-pw-1") as conn:
            conn.execute("CREATE TABLE stream_gages (id serial PRIMARY KEY, value integer)")
            conn.execute("INSERT INTO stream_gages (value) VALUES (1), (2)")

        apps.assign_service(platform, APP, "example_db", "stranger")
        fails(
            invoke(f"apps adopt {APP} --database example_db --yes"),
            f'owned by "{owner_user}"',
            "may not hand the database over",
            f'GRANT "{owner_user}" TO "{stranger}"',
        )
        assert comment(admin_conn, EXAMPLE) is None

        apps.assign_service(platform, APP, "example_db", "tethys")
        ok(invoke(f"apps adopt {APP} --database example_db --yes"))
        assert owner(admin_conn, EXAMPLE) == EXAMPLE
        assert set(table_owners(pg, EXAMPLE).values()) == {EXAMPLE}
        with tethys_app.get_persistent_store_database("example_db").begin() as conn:
            conn.execute(text("INSERT INTO stream_gages (value) VALUES (3)"))
            assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar() == 3
    finally:
        from storekeeper import engines

        engines.clear()
        drop_service_user(admin_conn, stranger)
        drop_service_user(admin_conn, owner_user)


def test_a_store_the_app_created_at_run_time_in_tethys_is_adopted_once_it_is_recorded(
    tethys_app, invoke, admin_conn, pg
):
    scratch = f"{APP}_scratch"
    make_tethys_db(admin_conn, pg, scratch)
    # Creating it again through storekeeper records the dynamic store, refuses the database, and names adoption.
    err = fails(invoke(f"stores create {APP} scratch -c primary"), "was not created by storekeeper")
    assert f"storekeeper apps adopt {APP} --database scratch" in err

    done = as_json(invoke(f"apps adopt {APP} --database scratch --yes --json"))
    assert [r["action"] for r in done["results"]] == ["adopted"]
    ok(invoke(f"stores create {APP} scratch -c primary"))
    assert owner(admin_conn, scratch) == scratch
    with connect(pg, scratch) as conn:
        assert one(conn, "SELECT count(*) FROM stream_gages") == 3
