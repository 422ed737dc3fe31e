"""Templates and clones: built once per code version, cloned fast, never stale, never half-built, never in use."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from storekeeper import StoreError, engines
from storekeeper.platform import Platform
from storekeeper.testing import copies
from storekeeper.testing.fixtures import fresh_copy
from tests.core.conftest import connect_to, database_exists, first_time_runs
from tests.testing.conftest import COPY, TEMPLATE, copies_left, database_comment, database_oid, gage_values

INIT = "my_first_app.model.init_example_db"


def _template_comment() -> str:
    """The marker of an up-to-date template owned by its test role (the test server's user may create roles)."""
    return f"storekeeper:template:{copies.code_hash(INIT, False)}:role my_first_app/example_db installation=test-suite"


def _new_copy() -> None:
    """Replace the test copy with a fresh clone, as a test fixture does."""
    fresh_copy("my_first_app", "example_db")
    engines.invalidate("my_first_app")


def test_template_is_built_once_and_reused_for_fresh_copies(
    testing: type, no_templates: None, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    _new_copy()
    oid = database_oid(admin_conn, TEMPLATE)
    first_copy = database_oid(admin_conn, COPY)
    _new_copy()
    assert database_oid(admin_conn, TEMPLATE) == oid
    assert database_oid(admin_conn, COPY) != first_copy  # a new clone, not the old copy
    assert first_time_runs(pg_admin_url, COPY) == [True]  # cloned, not initialized again
    assert gage_values(pg_admin_url, COPY) == [1, 2]


def test_template_records_the_code_hash_and_refuses_connections(
    testing: type, no_templates: None, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    _new_copy()
    assert database_comment(admin_conn, TEMPLATE) == _template_comment()
    allowed = admin_conn.execute("SELECT datallowconn FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone()
    assert allowed == (False,)
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        connect_to(pg_admin_url, TEMPLATE)


def test_copy_is_marked_initialized_for_its_store(testing: type, admin_conn: psycopg.Connection) -> None:
    testing.get_persistent_store_database("example_db")
    assert (
        database_comment(admin_conn, COPY) == "storekeeper:initialized my_first_app/example_db installation=test-suite"
    )


def test_template_is_rebuilt_when_the_apps_code_changes(
    testing: type, no_templates: None, admin_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _new_copy()
    oid = database_oid(admin_conn, TEMPLATE)
    monkeypatch.setattr(copies, "code_hash", lambda *_: "changedcode")
    _new_copy()
    assert database_oid(admin_conn, TEMPLATE) != oid
    assert (
        database_comment(admin_conn, TEMPLATE)
        == "storekeeper:template:changedcode:role my_first_app/example_db installation=test-suite"
    )
    rebuilt = database_oid(admin_conn, TEMPLATE)
    _new_copy()
    assert database_oid(admin_conn, TEMPLATE) == rebuilt


def test_code_hash_follows_the_initializers_package_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "hashed_app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text("def init(engine, first_time):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = copies.code_hash("hashed_app.model.init", False)
    assert copies.code_hash("hashed_app.model.init", False) == first
    assert copies.code_hash("hashed_app.model.init", True) != first  # spatial is part of what a template is
    (package / "model.py").write_text("def init(engine, first_time):\n    engine.dispose()\n")
    changed = copies.code_hash("hashed_app.model.init", False)
    assert changed != first
    (package / "helpers.py").write_text("X = 1\n")  # any module of the package can change what init does
    assert copies.code_hash("hashed_app.model.init", False) != changed


def test_rebuild_templates_flag_rebuilds_each_template_once(
    testing: type, no_templates: None, admin_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    _new_copy()
    oid = database_oid(admin_conn, TEMPLATE)
    # A new run with --rebuild-templates: the template built by an earlier run is rebuilt, once.
    copies.drop_spares()  # what the earlier run's plugin does at its end
    copies.reset()  # a new process: no template rebuilt yet
    copies.set_rebuild_templates(True)  # what the plugin does for --rebuild-templates
    _new_copy()
    rebuilt = database_oid(admin_conn, TEMPLATE)
    assert rebuilt != oid
    _new_copy()
    assert database_oid(admin_conn, TEMPLATE) == rebuilt
    assert database_comment(admin_conn, TEMPLATE) == _template_comment()


def test_failing_initializer_leaves_no_half_built_template(
    platform: Platform,
    flaky_app: str,
    fail_flag: Path,
    no_templates: None,
    monkeypatch: pytest.MonkeyPatch,
    admin_conn: psycopg.Connection,
) -> None:
    from sample_apps.flaky import App

    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    with pytest.raises(Exception, match="simulated failure"):
        App.get_persistent_store_database("db")
    assert not database_exists(admin_conn, "tpl_flaky_app_db")
    assert not database_exists(admin_conn, "test_flaky_app_db")
    assert not database_exists(admin_conn, "flaky_app_db")

    fail_flag.unlink()  # fixed: the next use builds the template from scratch
    engine = App.get_persistent_store_database("db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT first_time FROM runs").scalars().all() == [True]
    assert database_exists(admin_conn, "tpl_flaky_app_db")


def test_clone_of_a_template_in_use_retries_then_names_the_template(
    testing: type,
    no_templates: None,
    admin_conn: psycopg.Connection,
    pg_admin_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _new_copy()
    testing.drop_persistent_store("example_db")
    admin_conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(TEMPLATE)))
    monkeypatch.setattr(copies, "IN_USE_RETRY_SECONDS", 0.2)
    with connect_to(pg_admin_url, TEMPLATE):
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            testing.get_persistent_store_database("example_db")
        waited = time.monotonic() - started
    assert TEMPLATE in info.value.message
    assert "in use" in info.value.message
    assert info.value.hint and TEMPLATE in info.value.hint
    assert waited < 15
    assert not database_exists(admin_conn, COPY)
    # Once the other connection is gone the clone works again.
    assert testing.create_persistent_store("example_db", None) is True
    assert gage_values(pg_admin_url, COPY) == [1, 2]


def test_fresh_copy_works_after_another_run_cleaned_up_the_spare(
    testing: type, platform: Platform, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    _new_copy()  # also starts cloning the next copy in the background
    deadline = time.monotonic() + 30
    while database_comment(admin_conn, "test00_my_first_app_example_db") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    copies.clean_all(platform)  # what another `storekeeper test` run does when it starts
    assert copies_left(admin_conn) == []
    _new_copy()
    assert gage_values(pg_admin_url, COPY) == [1, 2]


def test_a_copy_is_owned_by_its_test_role_which_can_write_but_reach_nothing_else(
    testing: type, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    _new_copy()
    url = testing.get_persistent_store_database("example_db", as_url=True)
    assert (url.database, url.username) == (COPY, TEMPLATE)  # the template's role owns every copy
    owner = admin_conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (COPY,)).fetchone()
    assert owner == (TEMPLATE,)
    from sqlalchemy import text

    with testing.get_persistent_store_database("example_db").begin() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == TEMPLATE
        conn.execute(text("INSERT INTO stream_gages (latitude, longitude, value) VALUES (1, 2, 3)"))
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 3
    # The test role reaches neither the live store nor the template.
    for other in ("my_first_app_example_db", TEMPLATE):
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password, dbname=other)
