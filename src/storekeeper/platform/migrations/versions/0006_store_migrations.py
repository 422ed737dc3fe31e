"""settings: the Alembic script directory a store's schema migrations live in

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 02:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add settings.migrations: package:relative/path of the store's script directory ("" for none)."""
    with op.batch_alter_table("settings") as batch:
        batch.add_column(sa.Column("migrations", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    """Remove settings.migrations (stores keep their schema and alembic_version table)."""
    with op.batch_alter_table("settings") as batch:
        batch.drop_column("migrations")
