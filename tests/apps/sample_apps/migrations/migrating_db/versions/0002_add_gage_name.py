"""add gage name

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 02:01:00

"""

import os
import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gages", sa.Column("name", sa.Text(), nullable=True))
    time.sleep(float(os.environ.get("MIGRATING_APP_DELAY", "0")))  # lets concurrent processes overlap


def downgrade() -> None:
    op.drop_column("gages", "name")
