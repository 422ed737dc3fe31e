"""Export, import and clone of stores against a real server: round trips, refusals, the swap."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from storekeeper import engines, stores
from storekeeper.errors import InputError, StoreError
from storekeeper.platform import Platform
from storekeeper.stores import backups, dumps
from tests.core.conftest import APP, EXAMPLE_DB, connect_to, database_exists, rows, setting_record
from tests.pg_server import require_postgis

SPATIAL_DB = "my_first_app_spatial_db"


@pytest.fixture
def synced(platform: Platform, my_first_app: type) -> type:
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    return my_first_app


def _gage_values(pg_admin_url: str, dbname: str = EXAMPLE_DB) -> list[int]:
    return [r[0] for r in rows(pg_admin_url, dbname, "SELECT value FROM stream_gages ORDER BY value")]


def _add_gage(pg_admin_url: str, value: int, dbname: str = EXAMPLE_DB) -> None:
    with connect_to(pg_admin_url, dbname) as conn:
        conn.execute("INSERT INTO stream_gages (latitude, longitude, value) VALUES (1, 2, %s)", (value,))


def _side_databases(admin_conn: psycopg.Connection[Any], dbname: str = EXAMPLE_DB) -> list[str]:
    found = admin_conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (dbname + "\\_%",)).fetchall()
    return sorted(r[0] for r in found)


def test_export_then_import_replace_round_trip(platform, synced, pg_admin_url, admin_conn, tmp_path):
    _add_gage(pg_admin_url, 3)
    file = tmp_path / "example.skbackup"
    result = backups.export_store(platform, APP, "example_db", file)
    assert file.exists() and result.bytes > 0 and not dumps.partial_path(file).exists()
    manifest = dumps.read_manifest(file).manifest
    assert (manifest.app, manifest.store, manifest.spatial) == (APP, "example_db", False)
    assert manifest.migrations_revision is None and manifest.server_version and manifest.installation
    _add_gage(pg_admin_url, 4)  # made after the export: gone after the import
    generation = setting_record(platform, APP, "example_db")["generation"]
    out = backups.import_store(platform, APP, "example_db", file, replace=True)
    assert out.action == "replaced" and out.previous is None
    assert _gage_values(pg_admin_url) == [1, 2, 3]
    assert _side_databases(admin_conn) == []  # the previous database was dropped
    record = setting_record(platform, APP, "example_db")
    assert record["state"] == "initialized" and record["generation"] > generation
    marker = admin_conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (EXAMPLE_DB,)
    ).fetchone()[0]
    assert marker.startswith(f"storekeeper:initialized {APP}/example_db installation=")
    # The store works through the app API afterwards, and the next sync keeps the data.
    engine = synced.get_persistent_store_database("example_db")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 3
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    assert _gage_values(pg_admin_url) == [1, 2, 3]


def test_restored_objects_belong_to_the_store_role_whoever_owned_them(platform, synced, pg_admin_url, tmp_path):
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:  # a superuser's table: the export keeps its owner
        conn.execute("CREATE TABLE admin_made (id int primary key, note text)")
        conn.execute("INSERT INTO admin_made VALUES (1, 'x')")
        conn.execute("CREATE SCHEMA extra")
        conn.execute("CREATE VIEW extra.v AS SELECT id FROM admin_made")
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    backups.import_store(platform, APP, "example_db", file, replace=True)
    owners = rows(
        pg_admin_url,
        EXAMPLE_DB,
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('public', 'extra')",
    )
    assert owners == [(EXAMPLE_DB,)]
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'extra'")[
        0
    ] == (EXAMPLE_DB,)
    assert rows(pg_admin_url, EXAMPLE_DB, "SELECT note FROM admin_made") == [("x",)]


def test_import_into_an_absent_store_creates_it(platform, synced, pg_admin_url, admin_conn, tmp_path):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    stores.drop_store(platform, APP, "example_db")
    assert not database_exists(admin_conn, EXAMPLE_DB)
    out = backups.import_store(platform, APP, "example_db", file)
    assert out.action == "created"
    assert _gage_values(pg_admin_url) == [1, 2]
    assert setting_record(platform, APP, "example_db")["state"] == "initialized"
    assert rows(
        pg_admin_url, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (EXAMPLE_DB,)
    ) == [(EXAMPLE_DB,)]


def test_import_refuses_an_existing_store_without_replace(platform, synced, pg_admin_url, admin_conn, tmp_path):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    _add_gage(pg_admin_url, 9)
    with pytest.raises(StoreError, match="--replace") as err:
        backups.import_store(platform, APP, "example_db", file)
    assert "--replace" in (err.value.hint or "")
    assert _gage_values(pg_admin_url) == [1, 2, 9]
    assert _side_databases(admin_conn) == []


def test_keep_previous_keeps_the_old_database_and_the_next_import_leaves_it(
    platform, synced, pg_admin_url, admin_conn, tmp_path
):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    _add_gage(pg_admin_url, 7)
    out = backups.import_store(platform, APP, "example_db", file, replace=True, keep_previous=True)
    assert out.previous is not None and out.previous.startswith(EXAMPLE_DB + "_previous_")
    assert _gage_values(pg_admin_url, out.previous) == [1, 2, 7]
    assert _gage_values(pg_admin_url) == [1, 2]
    again = backups.import_store(platform, APP, "example_db", file, replace=True)
    assert again.cleaned == [] and database_exists(admin_conn, out.previous)


def test_import_refuses_another_stores_file(platform, synced, pg_admin_url, tmp_path):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    stores.sync_stores(platform, [APP], database="temp_db")
    with pytest.raises(StoreError, match='holds store "example_db"') as err:
        backups.import_store(platform, APP, "temp_db", file, replace=True)
    assert "stores import my_first_app --database example_db" in (err.value.hint or "")


def test_import_refuses_a_file_of_the_other_kind(platform, synced, pg_admin_url, tmp_path):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    _rewrite_manifest(file, tmp_path / "spatial.skbackup", spatial=True)
    with pytest.raises(StoreError, match="spatial"):
        backups.import_store(platform, APP, "example_db", tmp_path / "spatial.skbackup", replace=True)
    assert _gage_values(pg_admin_url) == [1, 2]


def _rewrite_manifest(src: Path, dst: Path, **changes: Any) -> None:
    """Copy a backup file with manifest fields changed (the dump and its checksum kept)."""
    backup = dumps.read_manifest(src)
    manifest = dumps.Manifest(**{**backup.manifest.to_dict(), **changes})
    with open(dst, "wb") as out, dumps.dump_stream(backup) as stream:
        dumps.write_dump(out, stream, 0)
        dumps.write_manifest(out, manifest, 0)


@pytest.mark.parametrize("damage", ["truncate", "flip", "not-a-tar", "empty", "no-manifest"])
def test_a_corrupt_or_truncated_file_leaves_the_store_untouched(
    platform, synced, pg_admin_url, admin_conn, tmp_path, damage
):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    data = bytearray(file.read_bytes())
    backup = dumps.read_manifest(file)
    if damage == "truncate":
        data = data[: backup.offset + backup.size // 2]
    elif damage == "flip":
        data[backup.offset + backup.size // 2] ^= 0xFF
    elif damage == "not-a-tar":
        data = bytearray(b"hello, this is not a backup" * 40)
    elif damage == "empty":
        data = bytearray()
    else:
        with tarfile.open(tmp_path / "x.tar", "w") as tar:
            tar.add(file, arcname=dumps.DUMP_MEMBER)
        data = bytearray((tmp_path / "x.tar").read_bytes())
    file.write_bytes(bytes(data))
    _add_gage(pg_admin_url, 5)
    with pytest.raises(StoreError, match=r"not a complete backup file.*Nothing was changed"):
        backups.import_store(platform, APP, "example_db", file, replace=True)
    assert _gage_values(pg_admin_url) == [1, 2, 5]
    assert _side_databases(admin_conn) == []


def test_a_restore_that_fails_leaves_the_store_untouched_and_no_database_behind(
    platform, synced, pg_admin_url, admin_conn, tmp_path
):
    """A well-formed file whose dump pg_restore refuses (its checksum matches: made so on purpose)."""
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    bogus = tmp_path / "bogus.dump"
    bogus.write_bytes(b"PGDMP" + b"\x00" * 500)
    import hashlib

    manifest = dumps.read_manifest(file).manifest
    changed = dumps.Manifest(
        **{**manifest.to_dict(), "dump_bytes": 505, "dump_sha256": hashlib.sha256(bogus.read_bytes()).hexdigest()}
    )
    broken = tmp_path / "broken.skbackup"
    with open(broken, "wb") as out, open(bogus, "rb") as src:
        dumps.write_dump(out, src, 0)
        dumps.write_manifest(out, changed, 0)
    with pytest.raises(StoreError, match="pg_restore failed"):
        backups.import_store(platform, APP, "example_db", broken, replace=True)
    assert _gage_values(pg_admin_url) == [1, 2]
    assert _side_databases(admin_conn) == []
    assert setting_record(platform, APP, "example_db")["state"] == "initialized"


def test_an_engine_held_open_during_the_swap_works_afterwards(platform, synced, pg_admin_url, tmp_path):
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    engine = synced.get_persistent_store_database("example_db")
    held = engine.connect()  # a session open on the old database during the swap
    held.execute(text("SELECT 1"))
    _add_gage(pg_admin_url, 8)
    backups.import_store(platform, APP, "example_db", file, replace=True)
    with pytest.raises(Exception):  # noqa: B017 - its session was ended by the swap
        held.execute(text("SELECT 1"))
    held.close()
    with engine.connect() as conn:  # the engine the app held reconnects, to the new data
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2
    fresh = synced.get_persistent_store_database("example_db")
    with fresh.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2


def test_a_spatial_store_round_trips_with_its_geometry(
    platform, my_first_app, pg_admin_url, postgis_available, tmp_path
):
    require_postgis(postgis_available)
    assert stores.sync_stores(platform, [APP], database="spatial_db")[0].ok
    file = tmp_path / "s.skbackup"
    backups.export_store(platform, APP, "spatial_db", file)
    assert dumps.read_manifest(file).manifest.spatial is True
    with connect_to(pg_admin_url, SPATIAL_DB) as conn:
        conn.execute("DELETE FROM places")
    backups.import_store(platform, APP, "spatial_db", file, replace=True)
    assert rows(pg_admin_url, SPATIAL_DB, "SELECT name, ST_AsText(geom) FROM places") == [
        ("Provo", "POINT(-111.6585 40.2338)")
    ]
    owner = rows(pg_admin_url, SPATIAL_DB, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'places'")
    assert owner == [(SPATIAL_DB,)]
    engine = my_first_app.get_persistent_store_database("spatial_db")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT ST_X(geom) FROM places")).scalar_one() == pytest.approx(-111.6585)


def test_the_migrations_revision_is_recorded(platform, synced, pg_admin_url, tmp_path):
    with connect_to(pg_admin_url, EXAMPLE_DB) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('abc123')")
    file = tmp_path / "f.skbackup"
    result = backups.export_store(platform, APP, "example_db", file)
    assert result.migrations_revision == "abc123"
    assert dumps.read_manifest(file).manifest.migrations_revision == "abc123"


def test_export_refuses_to_overwrite_a_file(platform, synced, tmp_path):
    file = tmp_path / "f.skbackup"
    file.write_text("keep me")
    with pytest.raises(InputError, match="never overwrites"):
        backups.export_store(platform, APP, "example_db", file)
    assert file.read_text() == "keep me"


def test_export_of_a_store_not_made_yet_names_syncstores(platform, my_first_app, tmp_path):
    with pytest.raises(StoreError, match="does not exist") as err:
        backups.export_store(platform, APP, "example_db", tmp_path / "f.skbackup")
    assert err.value.hint == "storekeeper syncstores my_first_app --database example_db"
    assert not list(tmp_path.glob("f.skbackup*"))


def test_pg_dump_gets_its_password_from_a_passfile_never_its_command_line(platform, synced, tmp_path, monkeypatch):
    import subprocess

    seen: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.Popen

    def spy(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        env = kwargs.get("env") or {}
        passfile = env.get("PGPASSFILE")
        content = Path(passfile).read_text() if passfile else ""
        mode = Path(passfile).stat().st_mode & 0o777 if passfile else None
        if "--version" in argv:
            return real(argv, *args, **kwargs)
        seen.append((list(argv), {"passfile": content, "mode": oct(mode or 0), "env": json.dumps(env)}))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    backups.import_store(platform, APP, "example_db", file, replace=True)
    with platform.session() as session:
        from storekeeper.stores import records

        target = records.make_target(
            platform,
            records.load_app(session, APP),
            records.get_setting(records.load_app(session, APP), "example_db"),
            EXAMPLE_DB,
        )
    secrets = [p for p in (target.spec.password, target.role_password) if p]
    assert len(seen) == 3  # pg_dump, pg_restore --list, pg_restore
    for argv, info in seen:
        assert info["mode"] == "0o600"
        for secret in secrets:
            assert not any(secret in arg for arg in argv)
            assert secret not in info["env"].replace(info["passfile"], "")
        assert "PGPASSWORD" not in json.loads(info["env"])
    assert target.role_password and target.role_password in seen[2][1]["passfile"]


def test_backups_lists_a_directory(platform, synced, tmp_path):
    backups.export_store(platform, APP, "example_db", tmp_path / "a.skbackup")
    (tmp_path / "broken.skbackup").write_text("nope")
    (tmp_path / "c.skbackup.partial").write_text("half")
    (tmp_path / "notes.txt").write_text("ignored")
    found = {b.file: b for b in backups.list_backups(tmp_path)}
    assert set(found) == {"a.skbackup", "broken.skbackup", "c.skbackup.partial"}
    assert (found["a.skbackup"].app, found["a.skbackup"].store, found["a.skbackup"].problem) == (
        APP,
        "example_db",
        None,
    )
    assert "not a complete" in (found["broken.skbackup"].problem or "")
    assert "incomplete" in (found["c.skbackup.partial"].problem or "")


def test_export_all_writes_one_file_per_existing_store(platform, synced, tmp_path):
    stores.sync_stores(platform, [APP], database="temp_db")
    results = backups.export_app(platform, APP, tmp_path / "out")
    assert sorted(r.store for r in results) == ["example_db", "temp_db"]
    assert len(list((tmp_path / "out").glob("*.skbackup"))) == 2


# -- leftovers --------------------------------------------------------------------------------


def test_leftovers_of_a_cut_short_import_are_cleaned_by_the_next(platform, synced, pg_admin_url, admin_conn, tmp_path):
    from storekeeper.backends import get_backend
    from storekeeper.stores import records

    with platform.session() as session:
        app = records.load_app(session, APP)
        target = records.make_target(platform, app, records.get_setting(app, "example_db"), EXAMPLE_DB)
    backend = get_backend(target.backend, target.spec)
    with backend.connect() as conn:  # as a kill -9 mid-restore and mid-swap would leave them
        for name, state in (
            (backups.side_name(EXAMPLE_DB, "restore"), backups.RESTORING),
            (backups.side_name(EXAMPLE_DB, "previous"), backups.PREVIOUS),
        ):
            backend.create_database(conn, name, what="x", owner=target.owner, role=target.role)
            backend.set_marker(conn, name, state, target.owner)
        conn.execute(f'ALTER DATABASE "{EXAMPLE_DB}" ALLOW_CONNECTIONS false')
    assert len(_side_databases(admin_conn)) == 2
    file = tmp_path / "f.skbackup"
    with pytest.raises(StoreError, match="refuses connections"):  # an export cannot dump it
        backups.export_store(platform, APP, "example_db", file)
    admin_conn.execute(f'ALTER DATABASE "{EXAMPLE_DB}" ALLOW_CONNECTIONS true')
    backups.export_store(platform, APP, "example_db", file)
    admin_conn.execute(f'ALTER DATABASE "{EXAMPLE_DB}" ALLOW_CONNECTIONS false')
    out = backups.import_store(platform, APP, "example_db", file, replace=True)
    assert len(out.cleaned) == 2
    assert _side_databases(admin_conn) == []
    assert _gage_values(pg_admin_url) == [1, 2]


def test_side_names_fit_postgresql(platform):
    name = backups.side_name("a" * 63, "restore")
    assert len(name) == 63 and backups._SIDE.search(name)


# -- clone ------------------------------------------------------------------------------------


def test_clone_on_the_same_service_is_a_store_of_its_own(platform, synced, pg_admin_url, admin_conn):
    _add_gage(pg_admin_url, 3)
    engine = synced.get_persistent_store_database("example_db")
    held = engine.connect()
    held.execute(text("SELECT 1"))
    result = backups.clone_store(platform, APP, "example_db", "copy_db")
    with pytest.raises(Exception):  # noqa: B017 - its session was ended for the template copy
        held.execute(text("SELECT 1"))
    held.close()
    assert result.method == "template"
    copy = "my_first_app_copy_db"
    assert _gage_values(pg_admin_url, copy) == [1, 2, 3]
    owners = rows(
        pg_admin_url,
        copy,
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public'",
    )
    assert owners == [(copy,)]
    record = setting_record(platform, APP, "copy_db")
    assert record["state"] == "initialized" and record["dynamic"]
    # The source's role may not reach the clone; the clone works through the app API.
    assert not rows(pg_admin_url, "postgres", "SELECT has_database_privilege(%s, %s, 'CONNECT')", (EXAMPLE_DB, copy))[
        0
    ][0]
    with synced.get_persistent_store_database("copy_db").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 3
    with engine.connect() as conn:  # the source's engine reconnects
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 3
    with pytest.raises(StoreError, match="already has a store"):
        backups.clone_store(platform, APP, "example_db", "copy_db")
    stores.drop_store(platform, APP, "copy_db")
    assert not database_exists(admin_conn, copy)


def test_clone_to_another_service_dumps_and_restores(platform, synced, pg_admin_url, admin_conn):
    from sqlalchemy.engine import make_url

    from storekeeper import services

    u = make_url(pg_admin_url)
    services.create_service(
        platform,
        name="other",
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        username=u.username or "postgres",
        password=u.password,
    )
    result = backups.clone_store(platform, APP, "example_db", "far_db", service="other")
    assert (result.method, result.service) == ("dump and restore", "other")
    assert _gage_values(pg_admin_url, "my_first_app_far_db") == [1, 2]
    with synced.get_persistent_store_database("far_db").connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2


def test_clone_refuses_a_bad_name_and_an_unknown_service(platform, synced, admin_conn):
    from storekeeper.errors import InvalidNameError, ServiceError

    with pytest.raises(InvalidNameError):
        backups.clone_store(platform, APP, "example_db", 'x"; DROP DATABASE postgres; --')
    with pytest.raises(ServiceError, match="does not exist"):
        backups.clone_store(platform, APP, "example_db", "y_db", service="nowhere")
    assert setting_record(platform, APP, "y_db") is None
    engines.clear()


def test_an_engine_of_another_process_meets_the_swap_without_a_failed_query(
    platform, synced, pg_admin_url, tmp_path, monkeypatch
):
    """Another process's engine is not invalidated at once: its pooled sessions were ended by the swap.

    The pool replaces them at checkout, so the next query succeeds, on the new data.
    """
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    engine = synced.get_persistent_store_database("example_db")
    with engine.connect() as a, engine.connect() as b:  # two pooled sessions, idle after this
        a.execute(text("SELECT 1"))
        b.execute(text("SELECT 1"))
    _add_gage(pg_admin_url, 6)
    monkeypatch.setattr(engines, "invalidate", lambda *a, **k: None)  # as in another process
    backups.import_store(platform, APP, "example_db", file, replace=True)
    for _ in range(3):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2


def test_doctor_shows_leftovers_and_a_sync_drops_what_a_cut_short_import_left(platform, synced, admin_conn):
    from storekeeper import doctor
    from storekeeper.backends import get_backend
    from storekeeper.stores import records

    with platform.session() as session:
        app = records.load_app(session, APP)
        target = records.make_target(platform, app, records.get_setting(app, "example_db"), EXAMPLE_DB)
    backend = get_backend(target.backend, target.spec)
    restoring, kept = backups.side_name(EXAMPLE_DB, "restore"), backups.side_name(EXAMPLE_DB, "previous")
    with backend.connect() as conn:
        for name, state in ((restoring, backups.RESTORING), (kept, backups.KEPT)):
            backend.create_database(conn, name, what="x", owner=target.owner, role=target.role)
            backend.set_marker(conn, name, state, target.owner)
    found = {f.message.split()[1]: f for f in doctor.check_import_leftovers(platform)}
    assert found[restoring].level == "warning"
    assert found[restoring].fix == f"storekeeper syncstores {APP} --database example_db  (drops it)"
    assert found[kept].level == "info"
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    assert _side_databases(admin_conn) == [kept]


def test_backup_before_keeps_the_newest_files_of_each_store(platform, synced, tmp_path):
    stores.sync_stores(platform, [APP], database="temp_db")
    for _ in range(3):
        done = backups.backup_before(platform, APP, None, tmp_path, keep=2)
        assert sorted(r.store for r in done) == ["example_db", "temp_db"]  # spatial_db was never made: skipped
    assert len(list(tmp_path.glob(f"{EXAMPLE_DB}-*.skbackup"))) == 2
    assert len(list(tmp_path.glob("my_first_app_temp_db-*.skbackup"))) == 2


MANAGED = "sk_backup_managed"


@pytest.fixture
def managed(platform: Platform, my_first_app: type, pg_admin_url: str) -> Any:
    """my_first_app's example_db on a service whose user has exactly LOGIN CREATEDB CREATEROLE (no superuser)."""
    from storekeeper import apps
    from tests.core.conftest import drop_service_user, make_service_user

    make_service_user(platform, pg_admin_url, "managed", MANAGED, "managed-pw", "LOGIN CREATEDB CREATEROLE")
    apps.assign_service(platform, APP, "example_db", "managed")
    assert stores.sync_stores(platform, [APP], database="example_db")[0].ok
    yield "managed"
    engines.clear()
    with connect_to(pg_admin_url, "postgres") as conn:
        drop_service_user(conn, MANAGED)


def test_export_import_and_clone_need_no_superuser(platform, managed, my_first_app, pg_admin_url, admin_conn, tmp_path):
    engine = my_first_app.get_persistent_store_database("example_db")
    with engine.connect() as conn:  # a pooled session of the store's role, ended by the swap
        conn.execute(text("SELECT 1"))
    file = tmp_path / "f.skbackup"
    backups.export_store(platform, APP, "example_db", file)
    _add_gage(pg_admin_url, 4)
    backups.import_store(platform, APP, "example_db", file, replace=True)
    assert _gage_values(pg_admin_url) == [1, 2]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stream_gages")).scalar_one() == 2
    backups.clone_store(platform, APP, "example_db", "managed_copy")
    copy = "my_first_app_managed_copy"
    assert rows(
        pg_admin_url, copy, "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'stream_gages'"
    ) == [(copy,)]
    stores.drop_store(platform, APP, "managed_copy")
    assert _side_databases(admin_conn) == []


def test_a_spatial_store_clones_on_the_same_service_and_across(platform, my_first_app, pg_admin_url, postgis_available):
    from sqlalchemy.engine import make_url

    from storekeeper import services

    require_postgis(postgis_available)
    assert stores.sync_stores(platform, [APP], database="spatial_db")[0].ok
    u = make_url(pg_admin_url)
    services.create_service(
        platform,
        name="other",
        host=u.host or "127.0.0.1",
        port=u.port or 5432,
        username=u.username or "postgres",
        password=u.password,
    )
    for new, service in (("near_map", None), ("far_map", "other")):
        backups.clone_store(platform, APP, "spatial_db", new, service=service)
        db = f"my_first_app_{new}"
        assert rows(pg_admin_url, db, "SELECT name, ST_AsText(geom) FROM places") == [
            ("Provo", "POINT(-111.6585 40.2338)")
        ]
        assert rows(pg_admin_url, db, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'places'") == [
            (db,)
        ]
        with my_first_app.get_persistent_store_database(new).connect() as conn:
            assert conn.execute(text("SELECT ST_Y(geom) FROM places")).scalar_one() == pytest.approx(40.2338)
