"""rows_app: stores holding one table of 10,000 rows (for the test-copy benchmark).

``data`` inserts its rows with one SQL statement (the fastest initializer there
is); ``orm_data`` adds them through an ORM session, as the seeds' initializers do.
"""

from sqlalchemy import Float, Integer, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from storekeeper import AppBase
from storekeeper.app_settings import PersistentStoreConnectionSetting, PersistentStoreDatabaseSetting

ROWS = 10_000


def init_data(engine, first_time):
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE IF NOT EXISTS readings (id serial PRIMARY KEY, gage int, value float8, note text)")
        )
        if first_time:
            conn.execute(
                text(
                    "INSERT INTO readings (gage, value, note) "
                    "SELECT g % 50, random() * 100, 'reading ' || g FROM generate_series(1, :n) AS g"
                ),
                {"n": ROWS},
            )


class Base(DeclarativeBase):
    pass


class Reading(Base):
    __tablename__ = "readings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gage: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text)


def init_orm_data(engine, first_time):
    """The seeds' style: create the tables, then add the initial rows through an ORM session."""
    Base.metadata.create_all(engine)
    if first_time:
        with Session(engine) as session:
            session.add_all(Reading(gage=i % 50, value=i / 100, note=f"reading {i}") for i in range(ROWS))
            session.commit()


class App(AppBase):
    name = "Rows App"
    package = "rows_app"

    def persistent_store_settings(self):
        return (
            PersistentStoreConnectionSetting(name="primary"),
            PersistentStoreDatabaseSetting(name="data", initializer="sample_apps.rows.init_data"),
            PersistentStoreDatabaseSetting(name="orm_data", initializer="sample_apps.rows.init_orm_data"),
        )
