"""bench_app: ten stores, each initializer creates one table and inserts one row."""

from sqlalchemy import text

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting

STORES = [f"s{i:02d}" for i in range(10)]


def init_store(engine, first_time):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text)"))
        if first_time:
            conn.execute(text("INSERT INTO items (name) VALUES ('first')"))


class App(AppBase):
    name = "Bench App"
    package = "bench_app"

    def persistent_store_settings(self):
        return (
            PersistentStoreConnectionSetting(name="primary"),
            *(PersistentStoreDatabaseSetting(name=n, initializer="sample_apps.bench.init_store") for n in STORES),
        )
