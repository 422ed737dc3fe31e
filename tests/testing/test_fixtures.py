"""The persistent_store fixtures in a real pytest run: scopes, modes, and copies dropped even when tests fail."""

from __future__ import annotations

import re
import subprocess
import textwrap
from pathlib import Path

import psycopg

from tests.core.conftest import EXAMPLE_DB
from tests.testing.conftest import copies_left, gage_values, run_pytest

HEADER = """
from sqlalchemy import text

from my_first_app.app import App
from storekeeper.testing import persistent_store


def gages(store):
    with store.sessionmaker() as session:
        return session.execute(text("SELECT count(*) FROM stream_gages")).scalar_one()


def add_gage(store):
    with store.sessionmaker() as session:
        session.execute(text("INSERT INTO stream_gages (latitude, longitude, value) VALUES (0, 0, 7)"))
        session.commit()
"""


def write_tests(tmp_path: Path, body: str, name: str = "test_store.py") -> Path:
    path = tmp_path / "suite" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def outcome(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


MODULE_SCOPED = """
    example_db = persistent_store("my_first_app", "example_db", scope="module")


    def test_first_writes(example_db):
        assert example_db.database == "test_my_first_app_example_db"
        assert gages(example_db) == 2
        add_gage(example_db)


    def test_second_sees_the_write(example_db):
        assert gages(example_db) == 3
        assert App.get_persistent_store_database("example_db").url.database == example_db.database
"""

DEFAULT_SCOPED = """
    example_db = persistent_store("my_first_app", "example_db")  # scope: --storekeeper-scope, ini, else function


    def test_first_writes(example_db):
        add_gage(example_db)
        assert gages(example_db) == 3


    def test_second_starts_fresh(example_db):
        assert gages(example_db) == 2
"""


def test_module_scope_shares_a_copy_and_function_scope_does_not(
    synced: type, sk_home: Path, tmp_path: Path, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    write_tests(tmp_path, MODULE_SCOPED, "test_module_scoped.py")
    path = write_tests(tmp_path, DEFAULT_SCOPED, "test_function_scoped.py")
    result = run_pytest(path.parent, sk_home, "-v")
    assert result.returncode == 0, outcome(result)
    assert re.search(r"\b4 passed\b", outcome(result)), outcome(result)
    assert copies_left(admin_conn) == []
    assert gage_values(pg_admin_url, EXAMPLE_DB) == [1, 2, 99]


def test_storekeeper_scope_flag_and_ini_key_set_the_default_scope(
    synced: type, sk_home: Path, tmp_path: Path, admin_conn: psycopg.Connection
) -> None:
    path = write_tests(tmp_path, DEFAULT_SCOPED)
    flagged = run_pytest(path, sk_home, "--storekeeper-scope", "module")
    (path.parent / "pytest.ini").write_text("[pytest]\nstorekeeper_scope = module\n")
    configured = run_pytest(path, sk_home)
    for result in (flagged, configured):  # one copy for the module: the second test sees the first's write
        assert result.returncode == 1, outcome(result)
        assert re.search(r"\b1 failed, 1 passed\b", outcome(result)), outcome(result)
        assert "test_second_starts_fresh" in outcome(result) and "assert 3 == 2" in outcome(result)
    assert copies_left(admin_conn) == []


def test_failing_tests_still_drop_their_copies(
    synced: type, sk_home: Path, tmp_path: Path, admin_conn: psycopg.Connection, pg_admin_url: str
) -> None:
    path = write_tests(
        tmp_path,
        """
        example_db = persistent_store("my_first_app", "example_db")
        fast_db = persistent_store("my_first_app", "example_db", mode="rollback")
        module_db = persistent_store("my_first_app", "temp_db", scope="module")


        def test_fails_after_writing(example_db, module_db):
            add_gage(example_db)
            assert gages(example_db) == 2, "deliberate failure"


        def test_errors_in_rollback_mode(fast_db):
            add_gage(fast_db)
            raise RuntimeError("deliberate error")
    """,
    )
    result = run_pytest(path, sk_home)
    assert result.returncode == 1, outcome(result)
    assert re.search(r"\b2 failed\b", outcome(result)), outcome(result)
    assert "deliberate failure" in outcome(result) and "deliberate error" in outcome(result)
    assert copies_left(admin_conn) == []
    assert gage_values(pg_admin_url, EXAMPLE_DB) == [1, 2, 99]
