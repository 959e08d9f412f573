"""model aliases

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 16:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'model_aliases',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('project_id', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('alias', sa.String(length=200), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['project_id'],
            ['projects.id'],
            name=op.f('fk_model_aliases_project_id_projects'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_model_aliases')),
        sa.UniqueConstraint(
            'project_id', 'name', 'alias', name=op.f('uq_model_aliases_project_id')
        ),
    )


def downgrade() -> None:
    op.drop_table('model_aliases')
