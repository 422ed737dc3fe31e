"""The data model of the stream gages store and its initializers.

A gage is a point with a reading. Its location is kept twice: as plain
``latitude``/``longitude`` columns (as in the Persistent Store API guide) and
as a PostGIS point ``geom`` in WGS 84 (SRID 4326). ``geom`` is a generated
column computed by the database from the two numbers, so the two can never
disagree, whoever writes the row (the ORM, raw SQL, another program).

The tables are made by the store's Alembic migrations
(``stream_gages/migrations/stream_gages_db``), which storekeeper runs before
the initializers: revision 0001 is the table, 0002 adds ``name``. Both
initializers take ``(engine, first_time)`` and only seed data: storekeeper runs
them on every sync (``first_time`` is True only for a freshly created, empty
database), after creating the PostGIS extension, since the stores are spatial.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import Computed, Engine, Float, Integer, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

#: WGS 84 longitude/latitude, the SRID of every stored geometry.
SRID = 4326


class Base(DeclarativeBase):
    """Declarative base of the stream gages store."""


class StreamGage(Base):
    """A stream gage: where it is and its latest reading.

    Example::

        with Session(engine) as session:
            session.add(StreamGage(latitude=40.24, longitude=-111.70, value=3))
            session.commit()      # geom is filled in by the database
    """

    __tablename__ = "stream_gages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    latitude: Mapped[float] = mapped_column(Float, nullable=False)
    longitude: Mapped[float] = mapped_column(Float, nullable=False)
    value: Mapped[int] = mapped_column(Integer, nullable=False)
    #: Added by revision 0002; gages made before it have none.
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    geom: Mapped[WKBElement] = mapped_column(
        Geometry("POINT", srid=SRID),
        Computed(f"ST_SetSRID(ST_MakePoint(longitude, latitude), {SRID})", persisted=True),
    )

    def __repr__(self) -> str:
        return (
            f"StreamGage(id={self.id!r}, latitude={self.latitude!r}, "
            f"longitude={self.longitude!r}, value={self.value!r})"
        )


@dataclass(frozen=True)
class SeedGage:
    """A gage every new store starts with."""

    latitude: float
    longitude: float
    value: int


#: The two gages of the Persistent Store API guide, near Provo, Utah.
SEED_GAGES: tuple[SeedGage, ...] = (
    SeedGage(latitude=40.23812952992122, longitude=-111.69585227966309, value=1),
    SeedGage(latitude=40.238784729316215, longitude=-111.7101001739502, value=2),
)


def _seed(engine: Engine, first_time: bool) -> None:
    # The tables come from the migrations, which a sync runs first.
    if not first_time:
        return  # the seed goes into an empty database only, never twice
    with Session(engine) as session:
        session.add_all(StreamGage(latitude=g.latitude, longitude=g.longitude, value=g.value) for g in SEED_GAGES)
        session.commit()


def init_stream_gages_db(engine: Engine, first_time: bool) -> None:
    """Initialize the app's main store: add the two seed gages the first time."""
    _seed(engine, first_time)


def init_scenario_db(engine: Engine, first_time: bool) -> None:
    """Initialize a scenario store (made at the same migrations' head): the same two seed gages."""
    _seed(engine, first_time)
