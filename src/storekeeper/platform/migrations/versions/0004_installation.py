"""installation: this installation's id, written into the marker of every database and role it makes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:00:00

"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Make the one-row installation table and give this installation its id."""
    table = op.create_table(
        "installation",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    op.bulk_insert(table, [{"id": uuid.uuid4().hex[:16], "created_at": datetime.now(UTC)}])


def downgrade() -> None:
    """Forget the installation id (markers already written keep it)."""
    op.drop_table("installation")
