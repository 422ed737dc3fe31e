"""Migration 0002 (API tokens, jobs, sign-in throttle) on a PostgreSQL platform database, as production uses."""

from __future__ import annotations

import uuid

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from storekeeper.platform import db
from tests.conftest import _admin_params


def test_migration_0002_upgrades_and_downgrades_on_postgresql(pg_admin_url):
    name = f"sk_platform_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(autocommit=True, **_admin_params(pg_admin_url)) as conn:  # type: ignore[arg-type]
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    engine = db.make_engine(make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False))
    try:
        assert db.upgrade(engine) == (None, db.HEAD_REVISION)
        assert {"api_tokens", "jobs", "sign_in_throttle", "portal_sessions"} <= set(inspect(engine).get_table_names())
        cfg = Config()
        cfg.set_main_option("script_location", str(db.MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        assert "jobs" not in inspect(engine).get_table_names()
        assert db.upgrade(engine) == ("0001", db.HEAD_REVISION)
    finally:
        engine.dispose()
        with psycopg.connect(autocommit=True, **_admin_params(pg_admin_url)) as conn:  # type: ignore[arg-type]
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
