"""batch predictions

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 14:54:01.947155
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'batch_predictions',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('project_id', sa.String(length=40), nullable=False),
        sa.Column('model_id', sa.String(length=40), nullable=False),
        sa.Column('dataset_id', sa.String(length=40), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=False),
        sa.Column('id_column', sa.String(length=200), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('queue', sa.String(length=32), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.String(length=200), nullable=True),
        sa.Column('lease_token', sa.String(length=40), nullable=True),
        sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('progress', sa.JSON(), nullable=True),
        sa.Column('error_code', sa.String(length=64), nullable=True),
        sa.Column('error_message', sa.Text(), nullable=True),
        sa.Column('result_key', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['dataset_id'],
            ['datasets.id'],
            name=op.f('fk_batch_predictions_dataset_id_datasets'),
        ),
        sa.ForeignKeyConstraint(
            ['model_id'], ['models.id'], name=op.f('fk_batch_predictions_model_id_models')
        ),
        sa.ForeignKeyConstraint(
            ['project_id'],
            ['projects.id'],
            name=op.f('fk_batch_predictions_project_id_projects'),
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_predictions')),
    )
    with op.batch_alter_table('batch_predictions', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_batch_predictions_project_id'), ['project_id'], unique=False
        )
        batch_op.create_index(batch_op.f('ix_batch_predictions_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('batch_predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_predictions_status'))
        batch_op.drop_index(batch_op.f('ix_batch_predictions_project_id'))
    op.drop_table('batch_predictions')
