"""Test copies of a store with migrations: its template is built at head, and rebuilt when the head changes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from storekeeper import engines, stores
from storekeeper.platform import Platform
from storekeeper.testing import copies
from tests.core.conftest import rows
from tests.testing.conftest import database_comment

COPY = "test_migrating_app_db"
TEMPLATE = "tpl_migrating_app_db"
MIGRATIONS = "sample_apps:migrations/migrating_db"


def test_a_test_copy_is_built_at_head_and_initialized_first_time(
    platform: Platform,
    migrating_app: str,
    no_templates: None,
    pg_admin_url: str,
    admin_conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engines.clear()
    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    (result,) = stores.sync_stores(platform, [migrating_app], database="db")
    assert result.ok, result
    assert rows(pg_admin_url, COPY, "SELECT version_num FROM alembic_version") == [("0003",)]
    assert rows(pg_admin_url, COPY, "SELECT first_time FROM init_log") == [(True,)]
    owners = {r[0] for r in rows(pg_admin_url, COPY, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
    assert owners == {TEMPLATE}  # the test role, as for every template
    assert copies.code_hash("sample_apps.migrating.init_db", False, MIGRATIONS) in (
        database_comment(admin_conn, TEMPLATE) or ""
    )
    # No live store was touched.
    assert admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = 'migrating_app_db'").fetchone() is None


def test_the_code_hash_follows_the_migrations(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "hashed_migrations"
    versions = package / "migrations" / "versions"
    versions.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (versions / "r1.py").write_text('revision = "r1"\ndown_revision = None\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    first = copies.code_hash("", False, "hashed_migrations:migrations")
    assert first != copies.code_hash("", False)
    assert copies.code_hash("", False, "hashed_migrations:migrations") == first
    (versions / "r2.py").write_text('revision = "r2"\ndown_revision = "r1"\n')  # a new head
    assert copies.code_hash("", False, "hashed_migrations:migrations") != first


def test_autogenerate_compares_the_models_with_the_test_copy_not_the_live_store(
    platform: Platform,
    migrating_app: str,
    no_templates: None,
    admin_conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pathlib import Path

    versions = Path(__file__).parents[1] / "apps" / "sample_apps" / "migrations" / "autogen_db" / "versions"
    before = set(versions.glob("*.py"))
    engines.clear()
    monkeypatch.setenv("STOREKEEPER_TESTING", "1")
    (result,) = stores.sync_stores(platform, [migrating_app], database="autogen_db")
    assert result.ok, result
    monkeypatch.delenv("STOREKEEPER_TESTING")
    engines.clear()
    copy = copies.existing_copy(platform, migrating_app, "autogen_db")
    assert copy is not None and copy.database == "test_migrating_app_autogen_db"
    try:
        made = stores.new_revision(
            platform, migrating_app, "autogen_db", "add item note", autogenerate=True, compare_with=copy
        )
        assert made.compared_with == "test_migrating_app_autogen_db"
        assert "op.add_column('items', sa.Column('note', sa.Text(), nullable=True))" in Path(made.path).read_text()
    finally:
        for path in set(versions.glob("*.py")) - before:
            path.unlink()
    # The live store was never needed: it does not even exist.
    assert admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = 'migrating_app_autogen_db'").fetchone() is None
