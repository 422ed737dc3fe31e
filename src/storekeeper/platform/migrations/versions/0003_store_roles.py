"""stores: each store's own login role (name, encrypted password); pending passwords for rotation

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the store role's name and its encrypted password to settings."""
    with op.batch_alter_table("settings") as batch:
        batch.add_column(sa.Column("role_name", sa.String(length=63), nullable=True))
        batch.add_column(sa.Column("role_password", sa.Text(), nullable=True))
        batch.add_column(sa.Column("role_password_pending", sa.Text(), nullable=True))
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("password_pending", sa.Text(), nullable=True))


def downgrade() -> None:
    """Remove the store role columns."""
    with op.batch_alter_table("services") as batch:
        batch.drop_column("password_pending")
    with op.batch_alter_table("settings") as batch:
        batch.drop_column("role_password_pending")
        batch.drop_column("role_password")
        batch.drop_column("role_name")
