"""storekeeper.platform.db.ensure_schema: create the platform database if missing, then migrate (real databases)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from storekeeper.config import Config, load_config
from storekeeper.errors import PlatformError
from storekeeper.platform import db
from tests.conftest import _admin_params


def sqlite_config(tmp_path: Path) -> Config:
    return load_config(tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'platform.sqlite3'}")


def test_a_fresh_sqlite_platform_database_is_migrated_then_left_alone(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    first = db.ensure_schema(config)
    assert first == db.SchemaChange(created=False, before=None, after=db.HEAD_REVISION)  # SQLite: no CREATE DATABASE
    assert first.changed
    engine = db.make_engine(config.database_url)
    try:
        db.check_schema(engine)  # what every command checks before using it
        assert "users" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    second = db.ensure_schema(config)
    assert second == db.SchemaChange(created=False, before=db.HEAD_REVISION, after=db.HEAD_REVISION)
    assert not second.changed


def test_a_revision_migrates_that_far_and_head_the_rest(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path)
    assert db.ensure_schema(config, "0001").after == "0001"
    rest = db.ensure_schema(config)
    assert (rest.before, rest.after, rest.changed) == ("0001", db.HEAD_REVISION, True)


def test_a_missing_postgresql_platform_database_is_created(pg_admin_url: str, tmp_path: Path) -> None:
    name = f"sk_platform_{uuid.uuid4().hex[:8]}"
    url = make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    config = load_config(tmp_path / "home", database_url=url)
    try:
        first = db.ensure_schema(config)
        assert (first.created, first.before, first.after) == (True, None, db.HEAD_REVISION)
        second = db.ensure_schema(config)
        assert (second.created, second.changed) == (False, False)
    finally:
        with psycopg.connect(autocommit=True, **_admin_params(pg_admin_url)) as conn:  # type: ignore[arg-type]
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_an_unreachable_server_names_the_fix(tmp_path: Path) -> None:
    config = load_config(tmp_path / "home", database_url="postgresql+psycopg://nobody:pw@127.0.0.1:1/platform")
    with pytest.raises(PlatformError, match="Cannot create the platform database"):
        db.ensure_schema(config)
