"""Tables for recorded Kargo state: stages, promotions, freight, analysis_runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 13:45:42.477768
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    op.create_table(
        "analysis_runs",
        sa.Column("stage", sa.String(length=253), nullable=True),
        sa.Column("freight_collection", sa.String(length=64), nullable=True),
        sa.Column("promotion", sa.String(length=253), nullable=True),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("terminated", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=True),
        sa.Column("resource_version", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", name=op.f("pk_analysis_runs")),
    )
    with op.batch_alter_table("analysis_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_analysis_runs_verification", ["namespace", "stage", "freight_collection", "created_at"], unique=False
        )

    op.create_table(
        "freight",
        sa.Column("alias", sa.String(length=253), nullable=True),
        sa.Column("origin_kind", sa.String(length=64), nullable=True),
        sa.Column("origin_name", sa.String(length=253), nullable=True),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=True),
        sa.Column("resource_version", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", name=op.f("pk_freight")),
    )
    op.create_table(
        "promotions",
        sa.Column("stage", sa.String(length=253), nullable=False),
        sa.Column("freight", sa.String(length=64), nullable=True),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("terminal", sa.Boolean(), nullable=False),
        sa.Column("queue_key", sa.String(length=254), nullable=False),
        sa.Column("freight_collection", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("abort_requested", sa.Boolean(), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=True),
        sa.Column("resource_version", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", name=op.f("pk_promotions")),
    )
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.create_index("ix_promotions_phase", ["namespace", "stage", "phase", "queue_key"], unique=False)
        batch_op.create_index("ix_promotions_queue", ["namespace", "stage", "terminal", "queue_key"], unique=False)

    op.create_table(
        "stages",
        sa.Column("has_verification", sa.Boolean(), nullable=False),
        sa.Column("health_status", sa.String(length=32), nullable=True),
        sa.Column("current_promotion", sa.String(length=253), nullable=True),
        sa.Column("last_promotion", sa.String(length=253), nullable=True),
        sa.Column("current_freight_collection", sa.String(length=64), nullable=True),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=True),
        sa.Column("resource_version", sa.String(length=64), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", name=op.f("pk_stages")),
    )


def downgrade() -> None:

    op.drop_table("stages")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_index("ix_promotions_queue")
        batch_op.drop_index("ix_promotions_phase")

    op.drop_table("promotions")
    op.drop_table("freight")
    with op.batch_alter_table("analysis_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_analysis_runs_verification")

    op.drop_table("analysis_runs")
