"""job enqueued_at: when a job's message was last sent, so a lost one can be sent again

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 13:45:34.808375
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows stay NULL: the reconciler reads that as "sent when created".
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("enqueued_at")
