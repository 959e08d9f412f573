"""job_slots: the nodes beyond the first of a training job on several workers
(training.resources.nodes), each claimed by the worker that joins the attempt's rendezvous

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-17 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_slots",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node_rank", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_slots_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_slots")),
        sa.UniqueConstraint(
            "job_id", "attempt", "node_rank", name=op.f("uq_job_slots_job_id")
        ),
    )
    with op.batch_alter_table("job_slots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_slots_job_id"), ["job_id"])


def downgrade() -> None:
    op.drop_table("job_slots")
