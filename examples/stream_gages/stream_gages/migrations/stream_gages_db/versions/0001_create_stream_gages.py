"""create stream_gages

Revision ID: 0001
Revises:
Create Date: 2026-11-30 02:30:00

The table the initializer's ``create_all`` used to make: a store made before
the app used migrations matches this revision, so record it there once with
``storekeeper stores migrate stream_gages --database stream_gages_db --stamp 0001``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_gages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column(
            "geom",
            Geometry("POINT", srid=4326),  # GeoAlchemy2 adds its GiST index, as create_all did
            sa.Computed("ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)", persisted=True),
        ),
    )


def downgrade() -> None:
    op.drop_table("stream_gages")
