"""The decision log (folded repeats, reasons for filtering) and start claims.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 14:19:11.624224
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    op.create_table(
        "decision_reasons",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("policy", sa.String(length=63), nullable=False),
        sa.Column("code", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", "position", name=op.f("pk_decision_reasons")),
    )
    with op.batch_alter_table("decision_reasons", schema=None) as batch_op:
        batch_op.create_index("ix_decision_reasons_code", ["code", "decision_id"], unique=False)
        batch_op.create_index("ix_decision_reasons_policy", ["policy", "decision_id"], unique=False)

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("stage", sa.String(length=253), nullable=True),
        sa.Column("promotion", sa.String(length=253), nullable=True),
        sa.Column("prospective", sa.Boolean(), nullable=False),
        sa.Column("freight", sa.String(length=64), nullable=True),
        sa.Column("allow", sa.Boolean(), nullable=False),
        sa.Column("claimed", sa.Boolean(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repeat_count", sa.BigInteger(), nullable=False),
        sa.Column("fold_key", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("caller", sa.String(length=253), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_last_at", ["last_at"], unique=False)
        batch_op.create_index("ix_decisions_promotion", ["namespace", "promotion", "id"], unique=False)
        batch_op.create_index("ix_decisions_stage", ["namespace", "stage", "id"], unique=False)

    op.create_table(
        "stage_claims",
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("stage", sa.String(length=253), nullable=False),
        sa.Column("promotion", sa.String(length=253), nullable=False),
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "stage", name=op.f("pk_stage_claims")),
    )


def downgrade() -> None:

    op.drop_table("stage_claims")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_stage")
        batch_op.drop_index("ix_decisions_promotion")
        batch_op.drop_index("ix_decisions_last_at")

    op.drop_table("decisions")
    with op.batch_alter_table("decision_reasons", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_reasons_policy")
        batch_op.drop_index("ix_decision_reasons_code")

    op.drop_table("decision_reasons")
