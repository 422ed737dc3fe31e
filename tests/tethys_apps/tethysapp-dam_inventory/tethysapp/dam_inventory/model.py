"""The dam inventory's tables and the functions its controllers call (Tethys tutorial style)."""

import json

from sqlalchemy import Column, Float, Integer, String
from sqlalchemy.orm import declarative_base, sessionmaker

from .app import DamInventory as app

Base = declarative_base()


class Dam(Base):
    """One dam: where it is and who runs it."""

    __tablename__ = "dams"

    id = Column(Integer, primary_key=True)
    latitude = Column(Float)
    longitude = Column(Float)
    name = Column(String)
    owner = Column(String)
    river = Column(String)
    date_built = Column(String)


def add_new_dam(location, name, owner, river, date_built):
    """Store a dam; ``location`` is a GeoJSON point (a dict or its JSON text)."""
    geometry = json.loads(location) if isinstance(location, str) else location
    longitude, latitude = geometry["coordinates"][:2]
    dam = Dam(latitude=latitude, longitude=longitude, name=name, owner=owner, river=river, date_built=date_built)

    Session = app.get_persistent_store_database("primary_db", as_sessionmaker=True)
    session = Session()
    session.add(dam)
    session.commit()
    session.close()


def get_all_dams():
    """Return every dam, by name."""
    Session = app.get_persistent_store_database("primary_db", as_sessionmaker=True)
    session = Session()
    dams = session.query(Dam).order_by(Dam.name).all()
    session.close()
    return dams


def init_primary_db(engine, first_time):
    """Make the tables; a new database also gets two dams to start with."""
    Base.metadata.create_all(engine)
    if first_time:
        Session = sessionmaker(bind=engine)
        session = Session()
        session.add_all(
            [
                Dam(
                    latitude=40.406,
                    longitude=-111.529,
                    name="Deer Creek",
                    owner="Reclamation",
                    river="Provo River",
                    date_built="1941",
                ),
                Dam(
                    latitude=40.598,
                    longitude=-111.425,
                    name="Jordanelle",
                    owner="Reclamation",
                    river="Provo River",
                    date_built="1993",
                ),
            ]
        )
        session.commit()
        session.close()
