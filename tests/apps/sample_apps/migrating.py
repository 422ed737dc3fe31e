"""migrating_app: stores whose schema is made by Alembic migrations, not by their initializer.

``db`` has three revisions (0001 creates ``gages`` and ``init_log``, 0002 adds
``gages.name``, 0003 creates ``readings``); 0003 fails halfway, after creating
its table, while $MIGRATING_APP_FAIL names an existing file. Its initializer
only logs its runs and seeds one gage. ``autogen_db``'s models have a column
its one revision lacks, for ``stores revision --autogenerate``.
"""

from sqlalchemy import Integer, MetaData, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting


def init_db(engine, first_time):
    """Seed data only: the tables come from the migrations."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO init_log (first_time) VALUES (:f)"), {"f": first_time})
        if first_time:
            conn.execute(text("INSERT INTO gages (code, name) VALUES ('G1', 'First gage')"))


class AutogenBase(DeclarativeBase):
    metadata = MetaData()


class Item(AutogenBase):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # not in revision a001: autogenerate adds it


class App(AppBase):
    name = "Migrating App"
    package = "migrating_app"

    def persistent_store_settings(self):
        return (
            PersistentStoreConnectionSetting(name="primary", required=False),
            PersistentStoreDatabaseSetting(
                name="db",
                initializer="sample_apps.migrating.init_db",
                migrations="sample_apps:migrations/migrating_db",
            ),
            PersistentStoreDatabaseSetting(
                name="autogen_db",
                required=False,
                migrations="sample_apps:migrations/autogen_db",
                metadata="sample_apps.migrating:AutogenBase.metadata",
            ),
        )
