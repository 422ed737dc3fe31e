"""create items

Revision ID: a001
Revises:
Create Date: 2026-11-30 02:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "a001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "items", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("label", sa.Text(), nullable=False)
    )


def downgrade() -> None:
    op.drop_table("items")
