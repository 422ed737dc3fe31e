"""add gage name

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 02:31:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("stream_gages", sa.Column("name", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("stream_gages", "name")
