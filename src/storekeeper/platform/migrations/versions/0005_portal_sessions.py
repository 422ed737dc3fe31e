"""portal: server-side web admin sessions (sign-out and password resets end them)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add portal_sessions: one row per signed-in browser, keyed by the SHA-256 of its session id."""
    op.create_table(
        "portal_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_portal_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_portal_sessions")),
    )
    with op.batch_alter_table("portal_sessions") as batch:
        batch.create_index(batch.f("ix_portal_sessions_user_id"), ["user_id"], unique=False)
        batch.create_index(batch.f("ix_portal_sessions_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    """Remove portal_sessions (every web admin session ends)."""
    with op.batch_alter_table("portal_sessions") as batch:
        batch.drop_index(batch.f("ix_portal_sessions_expires_at"))
        batch.drop_index(batch.f("ix_portal_sessions_user_id"))
    op.drop_table("portal_sessions")
