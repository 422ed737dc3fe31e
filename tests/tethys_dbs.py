"""Databases made by hand the way Tethys Platform makes them, for the tests of adoption.

Tethys creates an app's database as ``<app package>_<setting name>``, as its
service's superuser, with no comment; a spatial one gets PostGIS; the tables
and rows are the app's initializer's (here: my_first_app's models).
"""

from __future__ import annotations

from types import SimpleNamespace

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


def server_of(url):
    """The test server's superuser credentials (``.user``, ``.password``, ``.host``, ``.port``) from its URL."""
    u = make_url(url)
    return SimpleNamespace(user=u.username, password=u.password, host=u.host, port=u.port or 5432)


def connect(pg, database, **kw):
    """An autocommit connection to ``database`` (as the test server's superuser unless ``user``/``password``)."""
    return psycopg.connect(
        host=pg.host,
        port=pg.port,
        user=kw.get("user", pg.user),
        password=kw.get("password", pg.password),
        dbname=database,
        autocommit=True,
    )


def make_tethys_db(admin_conn, pg, database, *, spatial=False, tables=True):
    """Create a database as Tethys does: as the superuser, no comment; its tables as the app's initializer made them."""
    admin_conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with connect(pg, database) as conn:
        if spatial:
            conn.execute("CREATE EXTENSION postgis")
        if not tables:
            return
        conn.execute("CREATE TABLE init_log (id serial PRIMARY KEY, first_time boolean)")
        conn.execute("INSERT INTO init_log (first_time) VALUES (true)")
        if spatial:
            conn.execute("CREATE TABLE places (id serial PRIMARY KEY, name varchar(100), geom geometry(POINT, 4326))")
            conn.execute("INSERT INTO places (name, geom) VALUES ('Provo', 'SRID=4326;POINT(-111.6585 40.2338)')")
        else:
            conn.execute(
                "CREATE TABLE stream_gages (id serial PRIMARY KEY, latitude float8, longitude float8, value integer)"
            )
            conn.execute(
                "INSERT INTO stream_gages (latitude, longitude, value) VALUES (40.2381, -111.6958, 1), "
                "(40.2387, -111.7101, 2), (40.25, -111.7, 3)"
            )


def one(conn, query, *args):
    """The first column of the first row (None: no row)."""
    row = conn.execute(query, args).fetchone()
    return row[0] if row else None


def comment(admin_conn, database):
    """The database's comment: where storekeeper writes its marker."""
    return one(admin_conn, "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", database)


def owner(admin_conn, database):
    """The role that owns the database."""
    return one(admin_conn, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", database)
