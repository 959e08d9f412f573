"""batch prediction enqueued_at: when its message was last sent, so a lost one can be sent again

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows stay NULL: the reconciler reads that as "sent when created".
    with op.batch_alter_table("batch_predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_predictions", schema=None) as batch_op:
        batch_op.drop_column("enqueued_at")
