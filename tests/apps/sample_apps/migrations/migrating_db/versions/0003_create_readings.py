"""create readings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 02:02:00

"""

import os

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "readings", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("value", sa.Float(), nullable=False)
    )
    flag = os.environ.get("MIGRATING_APP_FAIL")
    if flag and os.path.exists(flag):
        op.execute("SELECT no_such_column FROM readings")  # fails halfway: readings was just created


def downgrade() -> None:
    op.drop_table("readings")
