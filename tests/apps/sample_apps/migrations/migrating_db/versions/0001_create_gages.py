"""create gages

Revision ID: 0001
Revises:
Create Date: 2026-11-30 02:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gages", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("code", sa.Text(), nullable=False)
    )
    op.create_table(
        "init_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("first_time", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("init_log")
    op.drop_table("gages")
