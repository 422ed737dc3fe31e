"""``storekeeper syncstores``: create the stores apps declare and run their initializers."""

from __future__ import annotations

import json

import psycopg
import pytest

from storekeeper import apps
from tests.cli.helpers import as_json, fails, ok, process_fails, process_ok
from tests.conftest import INSTALLED_APPS
from tests.pg_server import require_postgis

STORES = ["example_db", "spatial_db", "temp_db"]


@pytest.fixture(autouse=True)
def _postgis(request, postgis_available):
    # my_first_app declares a spatial store, so every full sync of it needs PostGIS.
    if "my_first_app" in request.fixturenames:
        require_postgis(postgis_available)


def _databases(admin_conn, prefix="my_first_app_"):
    rows = admin_conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (prefix + "%",)).fetchall()
    return sorted(r[0] for r in rows)


def _query(pg, database, query):
    with psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname=database) as conn:
        return conn.execute(query).fetchall()


def _by_store(data):
    return {r["store"]: r for r in data["results"]}


def test_sync_creates_the_stores_and_exits_0(invoke, my_first_app, admin_conn, pg):
    result = ok(invoke("syncstores my_first_app"))
    assert "3 of 3 store(s) ok" in result.stdout
    assert _databases(admin_conn) == [f"my_first_app_{s}" for s in STORES]
    assert _query(pg, "my_first_app_example_db", "SELECT count(*) FROM stream_gages") == [(2,)]
    assert _query(pg, "my_first_app_spatial_db", "SELECT extname FROM pg_extension WHERE extname = 'postgis'") == [
        ("postgis",)
    ]


def test_json_lists_per_store_results_and_second_run_is_not_first_time(invoke, my_first_app):
    first = as_json(invoke("syncstores my_first_app --json"))
    assert first["ok"] is True
    assert sorted(_by_store(first)) == STORES
    for r in first["results"]:
        assert (r["app"], r["ok"], r["action"], r["first_time"], r["service"]) == (
            "my_first_app",
            True,
            "created",
            True,
            "local",
        )
        assert r["database"] == f"my_first_app_{r['store']}"
    second = as_json(invoke("syncstores my_first_app --json"))
    assert [r["first_time"] for r in second["results"]] == [False, False, False]
    assert {r["action"] for r in second["results"]} == {"initializer ran"}


def test_refresh_without_yes_is_refused_and_drops_nothing(invoke, my_first_app, admin_conn, pg):
    ok(invoke("syncstores my_first_app"))
    with psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.user,
        password=pg.password,
        dbname="my_first_app_example_db",
        autocommit=True,
    ) as conn:
        conn.execute("INSERT INTO stream_gages (latitude, longitude, value) VALUES (0, 0, 3)")
    fails(invoke("syncstores my_first_app --refresh"), "--yes")
    assert _databases(admin_conn) == [f"my_first_app_{s}" for s in STORES]
    assert _query(pg, "my_first_app_example_db", "SELECT count(*) FROM stream_gages") == [(3,)]


def test_refresh_with_yes_recreates_the_stores_with_first_time(invoke, my_first_app, pg):
    ok(invoke("syncstores my_first_app"))
    with psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=pg.user,
        password=pg.password,
        dbname="my_first_app_example_db",
        autocommit=True,
    ) as conn:
        conn.execute("INSERT INTO stream_gages (latitude, longitude, value) VALUES (0, 0, 3)")
    data = as_json(invoke("syncstores my_first_app --refresh --yes --json"))
    assert {(r["action"], r["first_time"]) for r in data["results"]} == {("recreated", True)}
    assert _query(pg, "my_first_app_example_db", "SELECT count(*) FROM stream_gages") == [(2,)]
    assert _query(pg, "my_first_app_example_db", "SELECT first_time FROM init_log") == [(True,)]


def test_firsttime_forces_first_time_on_existing_stores(invoke, my_first_app, pg):
    ok(invoke("syncstores my_first_app"))
    data = as_json(invoke("syncstores my_first_app --firsttime --json"))
    assert [r["first_time"] for r in data["results"]] == [True, True, True]
    assert _query(pg, "my_first_app_example_db", "SELECT first_time FROM init_log ORDER BY id") == [(True,), (True,)]
    assert _query(pg, "my_first_app_example_db", "SELECT count(*) FROM stream_gages") == [(4,)]


def test_database_option_syncs_one_store(invoke, my_first_app, admin_conn):
    data = as_json(invoke("syncstores my_first_app --database example_db --json"))
    assert [r["store"] for r in data["results"]] == ["example_db"]
    assert _databases(admin_conn) == ["my_first_app_example_db"]


def test_database_option_with_unknown_store_names_app_settings_list(invoke, my_first_app):
    fails(invoke("syncstores my_first_app --database nope"), "nope", "storekeeper app-settings list my_first_app")


def test_dry_run_changes_nothing(invoke, my_first_app, admin_conn):
    data = as_json(invoke("syncstores my_first_app --dry-run --json"))
    assert {r["action"] for r in data["results"]} == {"would create"}
    assert _databases(admin_conn) == []
    assert "dry run" in ok(invoke("syncstores my_first_app --dry-run")).stdout
    states = {
        s["name"]: s["state"]
        for s in as_json(invoke("app-settings list my_first_app --json"))
        if s["kind"] == "database"
    }
    assert set(states.values()) == {"absent"}


def test_dry_run_refresh_needs_no_yes_and_drops_nothing(invoke, my_first_app, admin_conn):
    ok(invoke("syncstores my_first_app --database temp_db"))
    data = as_json(invoke("syncstores my_first_app --refresh --dry-run --json"))
    assert _by_store(data)["temp_db"]["action"] == "would recreate"
    assert _databases(admin_conn) == ["my_first_app_temp_db"]


def test_all_syncs_every_installed_app(invoke, my_first_app, platform, service, admin_conn):
    apps.assign_service(platform, "flaky_app", "db", service)
    for setting in ("primary", *(f"s{i:02d}" for i in range(10))):
        apps.assign_service(platform, "bench_app", setting, service)
    for setting in ("primary", "data", "orm_data"):
        apps.assign_service(platform, "rows_app", setting, service)
    apps.assign_service(platform, "links", "primary_db", service)
    apps.assign_service(platform, "stream_gages", "stream_gages_db", service)
    apps.assign_service(platform, "dam_inventory", "primary_db", service)  # the Tethys-layout apps
    apps.assign_service(platform, "flood_points", "flood_db", service)
    for setting in ("primary", "db", "autogen_db"):
        apps.assign_service(platform, "migrating_app", setting, service)
    data = as_json(invoke("syncstores --all --json"))
    assert data["ok"] is True, data
    assert {r["app"] for r in data["results"]} == INSTALLED_APPS
    assert len(data["results"]) == 3 + 10 + 1 + 2 + 1 + 1 + 1 + 1 + 2
    assert len(_databases(admin_conn, "bench_app_")) == 10
    assert _databases(admin_conn, "flaky_app_") == ["flaky_app_db"]


def test_all_reports_each_unassigned_app_and_still_syncs_the_rest(invoke, my_first_app, admin_conn):
    result = invoke("syncstores --all --json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    failed = [r for r in data["results"] if not r["ok"]]
    assert {r["app"] for r in failed} == INSTALLED_APPS - {"my_first_app"}
    assert all("storekeeper app-settings set" in r["hint"] for r in failed)
    assert _databases(admin_conn) == [f"my_first_app_{s}" for s in STORES]


def test_no_app_named_is_an_error(invoke, my_first_app):
    fails(invoke("syncstores"), "--all")


def test_unknown_app_exits_1_with_a_hint(invoke, my_first_app):
    fails(invoke("syncstores no_such_app"), "no_such_app", "storekeeper apps list")


def test_unassigned_required_setting_names_app_settings_set(invoke, service, admin_conn):
    result = invoke("syncstores my_first_app")
    err = fails(result, "storekeeper app-settings set my_first_app example_db")
    assert "spatial_db" in err
    assert _databases(admin_conn) == []
    data = json.loads(invoke("syncstores my_first_app --json").stdout)
    hints = {r["store"]: r["hint"] for r in data["results"] if not r["ok"]}
    assert set(hints) == {"example_db", "spatial_db"}
    assert "storekeeper app-settings set my_first_app spatial_db" in hints["spatial_db"]


def test_optional_unassigned_store_is_skipped(invoke, platform, service, my_first_app):
    ok(invoke("syncstores my_first_app --database temp_db"))
    ok(invoke("stores drop my_first_app temp_db --yes"))
    ok(invoke("app-settings reset my_first_app temp_db"))
    data = as_json(invoke("syncstores my_first_app --json"))
    assert _by_store(data)["temp_db"]["action"].startswith("skipped")


@pytest.fixture
def flaky(platform, service, tmp_path):
    """flaky_app assigned to the test service, and the file whose presence makes its initializer fail."""
    apps.assign_service(platform, "flaky_app", "db", service)
    flag = tmp_path / "fail-now"
    flag.touch()
    return flag


def test_failing_initializer_exits_1_naming_app_store_and_exception(invoke, flaky):
    fails(
        invoke("syncstores flaky_app", env={"FLAKY_APP_FAIL": str(flaky)}),
        'app "flaky_app"',
        'store "db"',
        "RuntimeError: simulated failure",
        "storekeeper syncstores flaky_app",
    )


def test_failed_initializer_is_retried_from_an_empty_store(run_cli, flaky, pg):
    env = {"FLAKY_APP_FAIL": str(flaky)}
    process_fails(run_cli("syncstores", "flaky_app", env=env), "flaky_app", "RuntimeError")
    failed = run_cli("syncstores", "flaky_app", "--json", env=env)
    assert failed.returncode == 1
    [result] = json.loads(failed.stdout)["results"]
    assert (result["ok"], result["store"]) == (False, "db")
    assert "simulated failure" in result["error"]
    flaky.unlink()
    retried = json.loads(process_ok(run_cli("syncstores", "flaky_app", "--json", env=env)).stdout)
    assert [(r["store"], r["first_time"], r["ok"]) for r in retried["results"]] == [("db", True, True)]
    assert _query(pg, "flaky_app_db", "SELECT first_time FROM runs") == [(True,)]


def test_real_process_json_output_is_parseable(run_cli, my_first_app):
    data = json.loads(process_ok(run_cli("syncstores", "my_first_app", "--json")).stdout)
    assert sorted(r["store"] for r in data["results"]) == STORES


def test_real_process_refresh_without_terminal_is_refused(run_cli, my_first_app, admin_conn):
    process_ok(run_cli("syncstores", "my_first_app", "--database", "temp_db"))
    process_fails(run_cli("syncstores", "my_first_app", "--refresh", input=""), "--yes")
    assert _databases(admin_conn) == ["my_first_app_temp_db"]


def test_two_processes_syncing_at_once_run_the_first_time_initializer_once(sk_home, platform, service, pg):
    import os
    import subprocess

    from tests.conftest import storekeeper_exe

    apps.assign_service(platform, "flaky_app", "db", service)
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "FLAKY_APP_DELAY": "1"}
    procs = [
        subprocess.Popen(
            [storekeeper_exe(), "syncstores", "flaky_app", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
    first_times = sorted(json.loads(stdout)["results"][0]["first_time"] for stdout, _ in outputs)
    assert first_times == [False, True]
    assert sorted(_query(pg, "flaky_app_db", "SELECT first_time FROM runs")) == [(False,), (True,)]


def test_a_sync_imports_no_other_app_no_web_stack_and_no_alembic_for_stores_without_migrations(
    my_first_app, sk_home
) -> None:
    """What a command imports is most of its time: a sync of one app loads that app and what it needs, no more."""
    import os
    import subprocess
    import sys

    # (my_first_app's own model imports GeoAlchemy2: that is the app's choice, not storekeeper's.)
    heavy = (
        "alembic",
        "mako",
        "fastapi",
        "jinja2",
        "storekeeper.stores.backups",
        "links",
        "stream_gages",
        "tethys_sdk",
    )
    code = (
        "import sys\n"
        "sys.argv = ['storekeeper', 'syncstores', 'my_first_app', '--database', 'example_db']\n"
        "from storekeeper.cli.main import run\n"
        "try:\n    run()\nexcept SystemExit as e:\n    code = e.code\n"
        f"print('LOADED=' + ','.join(m for m in {heavy!r} if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LOADED=\n" in result.stdout + "\n", result.stdout
