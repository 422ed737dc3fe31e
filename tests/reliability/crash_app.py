"""crash_app: the app the reliability suite provisions, kills and repairs.

It is not installed with the other test apps: the suite writes an entry point for
it (a ``*.dist-info`` directory, see :func:`tests.reliability.conftest.write_dist_info`)
and puts that directory on the path of the processes it starts, so no other test
sees it.

Stores ``s1`` and ``s2`` (plain) and ``geo`` (PostGIS), made through the
connection setting ``primary``; every setting is optional, so the suite assigns
only what the server supports. Each initializer run first commits one row to
``init_log`` (``first_time``, pid, home), so a test can count the runs and see
which installation ran them; then, when ``CRASH_APP_DELAY`` is set, it sleeps
that many seconds *in the server* (``pg_sleep``, visible in ``pg_stat_activity``,
so a kill can be aimed at it); then it writes the first-time data (one row in
``items``), which a ready store must hold exactly once.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine, text

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting

PACKAGE = "crash_app"
PLAIN_STORES = ("s1", "s2")
SPATIAL_STORE = "geo"
INITIALIZER = "tests.reliability.crash_app.init_store"
DELAY_ENV = "CRASH_APP_DELAY"


def init_store(engine: Engine, first_time: bool) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS init_log "
                "(id serial PRIMARY KEY, first_time boolean NOT NULL, pid int NOT NULL, home text)"
            )
        )
        conn.execute(
            text("INSERT INTO init_log (first_time, pid, home) VALUES (:f, :p, :h)"),
            {"f": first_time, "p": os.getpid(), "h": os.environ.get("STOREKEEPER_HOME", "")},
        )
    delay = float(os.environ.get(DELAY_ENV) or 0)
    if delay:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(:d)"), {"d": delay})
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text NOT NULL)"))
        if first_time:
            conn.execute(text("INSERT INTO items (name) VALUES ('first')"))


class App(AppBase):
    name = "Crash App"
    package = PACKAGE
    description = "Stores the reliability suite kills and repairs."

    def persistent_store_settings(self):  # type: ignore[no-untyped-def]
        return (
            PersistentStoreConnectionSetting(name="primary", required=False),
            *(PersistentStoreDatabaseSetting(name=n, initializer=INITIALIZER, required=False) for n in PLAIN_STORES),
            PersistentStoreDatabaseSetting(name=SPATIAL_STORE, initializer=INITIALIZER, spatial=True, required=False),
        )
