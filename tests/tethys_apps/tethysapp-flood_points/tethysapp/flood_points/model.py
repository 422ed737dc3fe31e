"""Address points in PostGIS and the flood queries the app's controllers run (Tethys tutorial style)."""

from geoalchemy2 import Geometry
from sqlalchemy import Column, Integer, String, func
from sqlalchemy.orm import declarative_base, sessionmaker

from .app import FloodPoints as app

Base = declarative_base()


class AddressPoint(Base):
    """One address and where it is (WGS 84)."""

    __tablename__ = "address_points"

    id = Column(Integer, primary_key=True)
    address = Column(String)
    geometry = Column(Geometry("POINT", srid=4326))


def add_address(address, longitude, latitude):
    """Store one address point."""
    Session = app.get_persistent_store_database("flood_db", as_sessionmaker=True)
    session = Session()
    session.add(AddressPoint(address=address, geometry=f"SRID=4326;POINT({longitude} {latitude})"))
    session.commit()
    session.close()


def addresses_in_extent(extent_wkt):
    """Return the addresses inside a flood extent (a WGS 84 polygon as WKT), sorted."""
    Session = app.get_persistent_store_database("flood_db", as_sessionmaker=True)
    session = Session()
    extent = func.ST_GeomFromText(extent_wkt, 4326)
    rows = session.query(AddressPoint.address).filter(func.ST_Intersects(AddressPoint.geometry, extent)).all()
    session.close()
    return sorted(r.address for r in rows)


def init_flood_db(engine, first_time):
    """Make the table; a new database gets three addresses along the river."""
    Base.metadata.create_all(engine)
    if first_time:
        Session = sessionmaker(bind=engine)
        session = Session()
        for address, lon, lat in (
            ("1 River Rd", -111.70, 40.30),
            ("2 River Rd", -111.71, 40.31),
            ("9 Hill St", -111.50, 40.50),
        ):
            session.add(AddressPoint(address=address, geometry=f"SRID=4326;POINT({lon} {lat})"))
        session.commit()
        session.close()
