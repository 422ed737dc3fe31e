"""`storekeeper test APP` as a real process: the app's tests pass against test copies, which are gone afterwards."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from storekeeper import engines, stores
from storekeeper.platform import load_platform
from storekeeper.testing import copies
from storekeeper.testing.fixtures import fresh_copy
from tests.core.conftest import APP, database_exists, first_time_runs, rows
from tests.testing.conftest import (
    COPY,
    EXAMPLE_DB,
    MARKER,
    TEMPLATE,
    copies_left,
    copies_on_server,
    database_oid,
    gage_values,
)

#: pytest arguments for every run: keep the inner runs from writing a cache into the project.
PYTEST_ARGS = ("--", "-p", "no:cacheprovider")


def passed(result: subprocess.CompletedProcess[str], count: int) -> None:
    """Assert the run exited 0 with exactly ``count`` tests passed and none failed."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(rf"\b{count} passed\b", output), output
    assert not re.search(r"\b(failed|errors?)\b", output), output


def leave_copy_behind(admin_conn: psycopg.Connection, name: str = COPY, marker: str | None = MARKER) -> None:
    """Create a test copy as a crashed run would leave it (with storekeeper's marker unless ``marker`` is None)."""
    admin_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if marker:
        admin_conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(marker)))


def build_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build my_first_app's example_db template in this process, as an earlier run would have."""
    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    fresh_copy(APP, "example_db")
    stores.drop_store(load_platform(), APP, "example_db")  # drops the copy (testing mode)
    copies.drop_spares()
    monkeypatch.delenv("STOREKEEPER_TESTING")
    engines.clear()


def test_storekeeper_test_runs_the_apps_tests_against_copies_and_leaves_none(
    synced: type, run_cli, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    real_before = rows(pg_admin_url, EXAMPLE_DB, "SELECT * FROM stream_gages ORDER BY id")
    leave_copy_behind(admin_conn)  # a crashed run's copies, one of a store these tests never use
    leave_copy_behind(
        admin_conn, "test_my_first_app_temp_db", "storekeeper:initialized my_first_app/temp_db installation=test-suite"
    )
    leave_copy_behind(admin_conn, "test_my_first_app_mine", marker=None)  # somebody's own database: not ours
    result = run_cli("test", APP, *PYTEST_ARGS)
    passed(result, 6)
    assert copies_left(admin_conn) == ["test_my_first_app_mine"]
    assert database_exists(admin_conn, TEMPLATE)  # kept for the next run
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT * FROM stream_gages ORDER BY id") == real_before
    assert first_time_runs(pg_admin_url, EXAMPLE_DB) == [True]


WORKER_TESTS = """
import os

import pytest

from my_first_app.app import App
from storekeeper.testing import persistent_store

example_db = persistent_store("my_first_app", "example_db")


@pytest.mark.parametrize("n", range(6))
def test_records_which_copy_it_got(example_db, n):
    assert App.get_persistent_store_database("example_db").url.database == example_db.database
    with open(os.environ["COPIES_SEEN"], "a") as seen:
        seen.write(f"{os.environ.get('PYTEST_XDIST_WORKER')} {example_db.database}\\n")
"""


def test_parallel_run_with_xdist_uses_a_copy_per_worker_and_leaves_none(
    synced: type, run_cli, admin_conn: psycopg.Connection, pg_admin_url: str, tmp_path: Path
) -> None:
    passed(run_cli("test", APP, *PYTEST_ARGS, "-n", "2"), 6)
    assert copies_left(admin_conn) == []
    oid = database_oid(admin_conn, TEMPLATE)

    # A second run, of tests given by --path, that write down which copy each worker got.
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_workers.py").write_text(WORKER_TESTS)
    seen_file = tmp_path / "seen.txt"
    result = run_cli(
        "test", APP, "--path", str(tmp_path / "tests"), *PYTEST_ARGS, "-n", "2", env={"COPIES_SEEN": str(seen_file)}
    )
    passed(result, 6)
    seen = {tuple(line.split()) for line in seen_file.read_text().splitlines()}
    assert {worker for worker, _ in seen} == {"gw0", "gw1"}
    assert all(database == f"test{worker[2:]}_my_first_app_example_db" for worker, database in seen), seen
    assert copies_left(admin_conn) == []
    assert database_oid(admin_conn, TEMPLATE) == oid  # kept between runs, not rebuilt
    assert gage_values(pg_admin_url, EXAMPLE_DB) == [1, 2, 99]


def test_rebuild_templates_option_rebuilds_the_template(
    synced: type, run_cli, admin_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_template(monkeypatch)
    oid = database_oid(admin_conn, TEMPLATE)
    passed(run_cli("test", APP, "--rebuild-templates", *PYTEST_ARGS), 6)
    assert database_oid(admin_conn, TEMPLATE) not in (None, oid)
    assert copies_left(admin_conn) == []


def test_clean_drops_the_apps_copies_and_templates_and_lists_them(
    synced: type, no_templates: None, run_cli, admin_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_template(monkeypatch)
    leave_copy_behind(admin_conn)
    leave_copy_behind(admin_conn, "test_my_first_app_mine", marker=None)
    # Another installation's copy on the same server, and one made before installation ids: not ours.
    leave_copy_behind(admin_conn, "test_my_first_app_temp_db", MARKER.replace("test-suite", "elsewhere"))
    leave_copy_behind(admin_conn, "test1_my_first_app_temp_db", "storekeeper:initialized my_first_app/temp_db")
    result = run_cli("test", APP, "--clean", "--json")
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["dropped"]) == [COPY, TEMPLATE]
    kept = ["test1_my_first_app_temp_db", "test_my_first_app_mine", "test_my_first_app_temp_db"]
    assert copies_on_server(admin_conn) == kept  # not made by this installation: kept
    for name in kept[::2]:
        admin_conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
    assert database_exists(admin_conn, EXAMPLE_DB)


def test_clean_of_every_app_says_what_it_dropped(
    synced: type, run_cli, admin_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_template(monkeypatch)
    result = run_cli("test", "--clean")
    assert result.returncode == 0, result.stderr
    assert TEMPLATE in result.stdout
    assert copies_on_server(admin_conn) == []
    assert run_cli("test", "--clean").returncode == 0  # nothing left: still fine


def test_unknown_app_is_an_error_with_a_hint(synced: type, run_cli) -> None:
    result = run_cli("test", "nope")
    assert result.returncode == 1
    assert "nope" in result.stderr
    assert "storekeeper apps list" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


SLOW_TEST = """
import os
import time
from pathlib import Path

from storekeeper.testing import persistent_store

example_db = persistent_store("my_first_app", "example_db")


def test_holds_its_copy_for_a_while(example_db):
    Path(os.environ["STARTED"]).write_text(example_db.database)
    deadline = time.monotonic() + 60
    while not Path(os.environ["RELEASE"]).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with example_db.sessionmaker() as session:  # the copy is still there: no other run dropped it
        assert session.connection().exec_driver_sql("SELECT count(*) FROM stream_gages").scalar() == 2
"""


def test_a_second_run_of_the_same_apps_tests_stops_at_once_and_spares_the_first(
    synced: type, run_cli, sk_home: Path, admin_conn: psycopg.Connection, tmp_path: Path
) -> None:
    import os
    import time

    from tests.conftest import storekeeper_exe

    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_slow.py").write_text(SLOW_TEST)
    started, release = tmp_path / "started", tmp_path / "release"
    env = {**os.environ, "STOREKEEPER_HOME": str(sk_home), "STARTED": str(started), "RELEASE": str(release)}
    first = subprocess.Popen(
        [storekeeper_exe(), "test", APP, "--path", str(tmp_path / "tests"), *PYTEST_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the first run never reached its test"
            time.sleep(0.1)
        second = run_cli("test", APP, *PYTEST_ARGS)
        output = second.stdout + second.stderr
        assert second.returncode != 0, output
        assert f'Another run of app "{APP}"' in output and "another service" in output, output
        assert database_exists(admin_conn, started.read_text())  # the first run's copy survived
    finally:
        release.write_text("go")
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out
    passed(run_cli("test", APP, *PYTEST_ARGS), 6)  # once the first run is over, runs go ahead again
