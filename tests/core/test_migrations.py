"""Schema migrations of stores (Alembic): sync brings stores to head, migrate moves them, failures are safe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from storekeeper import stores
from storekeeper.errors import MigrationError
from storekeeper.platform import Platform
from storekeeper.stores import migrations
from tests.core.conftest import rows

APP = "migrating_app"
DB = "migrating_app_db"


@pytest.fixture
def fail_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file whose existence makes revision 0003 of migrating_app's db fail halfway."""
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("MIGRATING_APP_FAIL", str(flag))
    return flag


def sync(platform: Platform, **kw: Any) -> stores.SyncResult:
    (result,) = stores.sync_stores(platform, [APP], database="db", **kw)
    return result


def version(url: str) -> list[str]:
    return [r[0] for r in rows(url, DB, "SELECT version_num FROM alembic_version")]


def tables(url: str) -> set[str]:
    return {r[0] for r in rows(url, DB, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_sync_creates_the_store_at_head_then_runs_the_initializer(
    platform: Platform, migrating_app: str, pg_admin_url: str
) -> None:
    result = sync(platform)
    assert result.ok, result
    assert (result.action, result.first_time, result.revisions) == ("created", True, ["0001", "0002", "0003"])
    assert version(pg_admin_url) == ["0003"]
    assert rows(pg_admin_url, DB, "SELECT code, name FROM gages") == [("G1", "First gage")]

    again = sync(platform)
    assert (again.action, again.first_time, again.revisions) == ("initializer ran", False, [])
    assert [r[0] for r in rows(pg_admin_url, DB, "SELECT first_time FROM init_log ORDER BY id")] == [True, False]


def test_migrated_objects_belong_to_the_store_role(platform: Platform, migrating_app: str, pg_admin_url: str) -> None:
    assert sync(platform).ok
    owners = dict(rows(pg_admin_url, DB, "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'"))
    assert owners == {t: DB for t in ("alembic_version", "gages", "init_log", "readings")}


def test_dry_run_lists_pending_revisions_and_changes_nothing(
    platform: Platform, migrating_app: str, pg_admin_url: str, admin_conn: psycopg.Connection
) -> None:
    plan = sync(platform, dry_run=True)
    assert plan.ok, plan
    assert plan.revisions == ["0001", "0002", "0003"]
    assert "would create" in plan.action and "3 pending: 0001, 0002, 0003" in plan.action
    assert admin_conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone() is None

    assert sync(platform).ok
    (down,) = migrations.migrate(platform, APP, "db", to="0001")
    assert (down.action, down.before, down.after) == ("downgrade", "0003", "0001")
    plan = sync(platform, dry_run=True)
    assert plan.revisions == ["0002", "0003"]
    assert plan.action.startswith("would run initializer, would migrate to 0003 (2 pending")
    assert version(pg_admin_url) == ["0001"]


def test_downgrade_upgrade_to_a_revision_and_stamp(platform: Platform, migrating_app: str, pg_admin_url: str) -> None:
    assert sync(platform).ok
    (r,) = migrations.migrate(platform, APP, "db", to="0001")
    assert (r.action, r.after, r.revisions) == ("downgrade", "0001", ["0003", "0002"])
    assert tables(pg_admin_url) == {"alembic_version", "gages", "init_log"}
    (r,) = migrations.migrate(platform, APP, "db", to="0002")
    assert (r.action, r.before, r.after, r.revisions) == ("upgrade", "0001", "0002", ["0002"])
    r, autogen = migrations.migrate(platform, APP)  # every store of the app: autogen_db is not made yet
    assert (r.store, r.action, r.after, r.revisions) == ("db", "upgrade", "0003", ["0003"])
    assert (autogen.store, autogen.action) == ("autogen_db", "absent")
    (r,) = migrations.migrate(platform, APP, "db")
    assert (r.action, r.after) == ("up to date", "0003")
    (r,) = migrations.migrate(platform, APP, "db", to="base")
    assert (r.action, r.after) == ("downgrade", None)
    assert tables(pg_admin_url) == {"alembic_version"}
    (r,) = migrations.migrate(platform, APP, "db", stamp="0002")  # records a revision, runs nothing
    assert (r.action, r.after) == ("stamp", "0002")
    assert tables(pg_admin_url) == {"alembic_version"}
    assert version(pg_admin_url) == ["0002"]


def test_sql_prints_the_migration_and_changes_nothing(
    platform: Platform, migrating_app: str, pg_admin_url: str
) -> None:
    assert sync(platform).ok
    migrations.migrate(platform, APP, "db", to="0001")
    (r,) = migrations.migrate(platform, APP, "db", sql=True)
    assert r.action == "sql" and r.sql is not None
    assert "ALTER TABLE gages ADD COLUMN name TEXT" in r.sql
    assert "CREATE TABLE readings" in r.sql
    assert version(pg_admin_url) == ["0001"]
    (r,) = migrations.migrate(platform, APP, "db", to="0001", sql=True)
    assert r.action == "up to date"


def test_a_migration_failing_halfway_leaves_the_last_good_revision_and_the_next_run_resumes(
    platform: Platform, migrating_app: str, pg_admin_url: str, fail_flag: Path
) -> None:
    fail_flag.unlink()
    assert sync(platform).ok
    migrations.migrate(platform, APP, "db", to="0002")
    fail_flag.touch()
    with pytest.raises(MigrationError) as caught:
        migrations.migrate(platform, APP, "db")
    err = caught.value
    assert 'Migration 0003 ("create readings") of store "db" of app "migrating_app"' in err.message
    assert "no_such_column" in err.message and "stays at revision 0002" in err.message
    assert err.hint == "fix revision 0003 in sample_apps:migrations/migrating_db, then run: " + (
        "storekeeper stores migrate migrating_app --database db"
    )
    assert version(pg_admin_url) == ["0002"]
    assert "readings" not in tables(pg_admin_url)  # the half-made table went with the failed revision

    # A sync refuses the same way, records the error, and keeps the store's data.
    failed = sync(platform)
    assert not failed.ok and "Migration 0003" in (failed.error or "")
    assert rows(pg_admin_url, DB, "SELECT code FROM gages") == [("G1",)]

    from storekeeper.audit import list_events

    events = [(e.action, e.outcome) for e in list_events(platform, limit=10)]
    assert ("store.migrate", "error") in events and ("store.sync", "error") in events

    fail_flag.unlink()
    resumed = sync(platform)
    assert resumed.ok and resumed.revisions == ["0003"]
    assert resumed.action == "migrated to 0003, initializer ran"
    assert version(pg_admin_url) == ["0003"]


def test_a_store_at_a_revision_the_code_does_not_know_is_refused(
    platform: Platform, migrating_app: str, pg_admin_url: str
) -> None:
    assert sync(platform).ok
    rows_changed = "UPDATE alembic_version SET version_num = 'ffff9999' RETURNING version_num"
    assert rows(pg_admin_url, DB, rows_changed) == [("ffff9999",)]
    result = sync(platform)
    assert not result.ok
    assert "is at revision ffff9999" in (result.error or "") and "they end at 0003" in (result.error or "")
    assert "--stamp REV" in (result.hint or "")
    with pytest.raises(MigrationError, match="ffff9999"):
        migrations.migrate(platform, APP, "db")
    (status,) = migrations.migration_status(platform, APP, "db")
    assert status.current == "ffff9999" and status.problem is not None


def test_a_store_with_tables_but_no_version_table_is_refused_until_stamped(
    platform: Platform, migrating_app: str, pg_admin_url: str
) -> None:
    assert sync(platform).ok
    from tests.core.conftest import connect_to

    with connect_to(pg_admin_url, DB) as conn:
        conn.execute("DROP TABLE alembic_version")
    result = sync(platform)
    assert not result.ok
    assert "no alembic_version table" in (result.error or "")
    assert "storekeeper stores migrate migrating_app --database db --stamp REV" in (result.hint or "")
    (r,) = migrations.migrate(platform, APP, "db", stamp="0003")
    assert (r.action, r.before, r.after) == ("stamp", None, "0003")
    assert sync(platform).ok


def test_status_and_history(platform: Platform, migrating_app: str) -> None:
    (before,) = migrations.migration_status(platform, APP, "db")
    assert (before.exists, before.current, before.head, before.pending_count) == (False, None, "0003", 3)
    assert sync(platform).ok
    migrations.migrate(platform, APP, "db", to="0001")
    (now,) = migrations.migration_status(platform, APP, "db")
    assert (now.exists, now.current, now.head, [p.revision for p in now.pending]) == (
        True,
        "0001",
        "0003",
        ["0002", "0003"],
    )
    target = migrations.targets(platform, APP, "db")[0]
    revs = migrations.history(target)
    assert [(r.revision, r.down_revision, r.message) for r in revs] == [
        ("0003", "0002", "create readings"),
        ("0002", "0001", "add gage name"),
        ("0001", None, "create gages"),
    ]
    assert revs[0].line == "0002 -> 0003 (head), create readings"


def test_a_dynamic_store_created_with_migrations_is_brought_to_head(
    platform: Platform, migrating_app: str, pg_admin_url: str
) -> None:
    from sample_apps.migrating import App

    assert App.create_persistent_store(
        "scenario_1",
        "primary",
        initializer="sample_apps.migrating.init_db",
        migrations="sample_apps:migrations/migrating_db",
    )
    db = "migrating_app_scenario_1"
    assert rows(pg_admin_url, db, "SELECT version_num FROM alembic_version") == [("0003",)]
    assert rows(pg_admin_url, db, "SELECT first_time FROM init_log") == [(True,)]
    (status,) = migrations.migration_status(platform, APP, "scenario_1")
    assert (status.current, status.pending_count) == ("0003", 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("migrations", "no_colon"),
        ("migrations", "pkg:/absolute"),
        ("migrations", "pkg:../outside"),
        ("migrations", "pkg:a/../b"),
        ("metadata", "pkg.model"),
        ("metadata", "pkg.model:Base.metadata()"),
    ],
)
def test_a_setting_refuses_a_malformed_migrations_or_metadata(field: str, value: str) -> None:
    from storekeeper import InvalidNameError
    from storekeeper.app_settings import PersistentStoreDatabaseSetting

    with pytest.raises(InvalidNameError, match=field):
        PersistentStoreDatabaseSetting(name="db", **{field: value})
    assert PersistentStoreDatabaseSetting(name="db", migrations="pkg.sub:migrations/db", metadata="pkg.m:Base.metadata")


def test_a_missing_script_directory_names_the_setting(platform: Platform, migrating_app: str) -> None:
    target = migrations.migration_target(platform, APP, "db")
    with pytest.raises(MigrationError, match='fix migrations= of setting "db"'):
        migrations.directory(target.__class__(**{**target.__dict__, "migrations": "sample_apps:no/such/dir"}))


def test_stores_migrated_in_parallel_threads_each_get_their_own_revisions(
    platform: Platform, migrating_app: str, pg_admin_url: str
) -> None:
    results = stores.sync_stores(platform, [APP], jobs=4)  # db and autogen_db at once
    assert [(r.store, r.ok, r.revisions) for r in results] == [
        ("db", True, ["0001", "0002", "0003"]),
        ("autogen_db", True, ["a001"]),
    ]
    assert tables(pg_admin_url) == {"alembic_version", "gages", "init_log", "readings"}
    public = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    assert {r[0] for r in rows(pg_admin_url, "migrating_app_autogen_db", public)} == {"alembic_version", "items"}
