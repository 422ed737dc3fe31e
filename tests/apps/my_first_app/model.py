"""Models and initializers of my_first_app; each run is logged in init_log so tests can count them."""

from geoalchemy2 import Geometry
from sqlalchemy import Boolean, Float, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class StreamGage(Base):
    __tablename__ = "stream_gages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    value: Mapped[int] = mapped_column(Integer)


class InitLog(Base):
    __tablename__ = "init_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_time: Mapped[bool] = mapped_column(Boolean)


class SpatialBase(DeclarativeBase):
    pass


class Place(SpatialBase):
    __tablename__ = "places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    geom = mapped_column(Geometry("POINT", srid=4326))


class SpatialInitLog(SpatialBase):
    __tablename__ = "init_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_time: Mapped[bool] = mapped_column(Boolean)


def init_example_db(engine, first_time):
    """Create the tables; add the two gages only the first time."""
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(InitLog(first_time=first_time))
        if first_time:
            session.add(StreamGage(latitude=40.23812952992122, longitude=-111.69585227966309, value=1))
            session.add(StreamGage(latitude=40.238784729316215, longitude=-111.7101001739502, value=2))
        session.commit()


def init_spatial_db(engine, first_time):
    SpatialBase.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(SpatialInitLog(first_time=first_time))
        if first_time:
            session.add(Place(name="Provo", geom="SRID=4326;POINT(-111.6585 40.2338)"))
        session.commit()


def init_temp_db(engine, first_time):
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(InitLog(first_time=first_time))
        session.commit()
