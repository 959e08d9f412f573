"""given splits and evaluations: a job may name its own validation and test datasets, and a
model may be scored on a stored labelled dataset as leased work (`evaluations`)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-15 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("validation_dataset_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("test_dataset_id", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            "fk_jobs_validation_dataset_id", "datasets", ["validation_dataset_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_jobs_test_dataset_id", "datasets", ["test_dataset_id"], ["id"]
        )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("lease_token", sa.String(length=40), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_evaluations_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_evaluations_model_id_models")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_evaluations_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evaluations_project_id"), ["project_id"])
        batch_op.create_index(batch_op.f("ix_evaluations_status"), ["status"])
        batch_op.create_index(batch_op.f("ix_evaluations_model_id"), ["model_id"])
        batch_op.create_index(batch_op.f("ix_evaluations_dataset_id"), ["dataset_id"])


def downgrade() -> None:
    op.drop_table("evaluations")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_test_dataset_id", type_="foreignkey")
        batch_op.drop_constraint("fk_jobs_validation_dataset_id", type_="foreignkey")
        batch_op.drop_column("test_dataset_id")
        batch_op.drop_column("validation_dataset_id")
