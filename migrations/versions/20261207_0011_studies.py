"""studies: a hyperparameter search over a base spec, and the study and trial number of the
training jobs that are its trials

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 03:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("dataset_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base_spec", sa.JSON(), nullable=False),
        sa.Column("search_space", sa.JSON(), nullable=False),
        sa.Column("objective_metric", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("max_trials", sa.Integer(), nullable=False),
        sa.Column("parallel_trials", sa.Integer(), nullable=False),
        sa.Column("max_failed_trials", sa.Integer(), nullable=False),
        sa.Column("sampler", sa.String(length=16), nullable=False),
        sa.Column("pruner", sa.String(length=32), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("best_job_id", sa.String(length=40), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_studies_project_id", "studies", ["project_id"])
    op.create_index("ix_studies_dataset_id", "studies", ["dataset_id"])
    op.create_index("ix_studies_status", "studies", ["status"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("study_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("optuna_trial_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_jobs_study_id", ["study_id"])
        # No trial number twice in a study, whatever two workers advancing it at once do.
        batch_op.create_unique_constraint("uq_jobs_study_trial", ["study_id", "trial_number"])
        batch_op.create_foreign_key("fk_jobs_study_id", "studies", ["study_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_jobs_study_id", type_="foreignkey")
        batch_op.drop_constraint("uq_jobs_study_trial", type_="unique")
        batch_op.drop_index("ix_jobs_study_id")
        batch_op.drop_column("optuna_trial_id")
        batch_op.drop_column("trial_number")
        batch_op.drop_column("study_id")
    op.drop_table("studies")
