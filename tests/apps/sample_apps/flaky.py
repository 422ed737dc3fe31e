"""flaky_app: an initializer that fails while $FLAKY_APP_FAIL names an existing file.

It writes half its data before raising, so tests can check that the retry starts
from an empty database.
"""

import os
import time

from sqlalchemy import text

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreDatabaseSetting


def init_db(engine, first_time):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS runs (id serial PRIMARY KEY, first_time boolean, pid int)"))
        conn.execute(text("INSERT INTO runs (first_time, pid) VALUES (:f, :p)"), {"f": first_time, "p": os.getpid()})
    delay = os.environ.get("FLAKY_APP_DELAY")
    if delay:
        time.sleep(float(delay))
    flag = os.environ.get("FLAKY_APP_FAIL")
    if flag and os.path.exists(flag):
        raise RuntimeError("simulated failure in flaky_app initializer")


class App(AppBase):
    name = "Flaky App"
    package = "flaky_app"

    def persistent_store_settings(self):
        return (PersistentStoreDatabaseSetting(name="db", initializer="sample_apps.flaky.init_db"),)
