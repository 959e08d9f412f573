"""job resolved_spec: the spec as checked at submit, its default model filled in, so the
worker trains exactly what was checked and resolves nothing again

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows stay NULL: their worker resolves the submitted spec, as before.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resolved_spec", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("resolved_spec")
