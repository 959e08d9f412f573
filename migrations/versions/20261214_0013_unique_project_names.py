"""projects.name unique: projects are created by name over HTTP now (`POST /v1/projects`), and
a second project of one name is refused (409) rather than made

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14 09:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.create_unique_constraint(op.f("uq_projects_name"), ["name"])


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_constraint(op.f("uq_projects_name"), type_="unique")
