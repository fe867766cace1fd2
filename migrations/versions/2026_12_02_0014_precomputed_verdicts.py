"""Verdicts computed when a Stage's state changed, answering the next question about each queued Promotion.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 07:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "precomputed_verdicts",
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("promotion", sa.String(length=253), nullable=False),
        sa.Column("stage", sa.String(length=253), nullable=False),
        sa.Column("stage_version", sa.BigInteger(), nullable=False),
        sa.Column("freight_version", sa.BigInteger(), nullable=False),
        sa.Column("policy_version", sa.BigInteger(), nullable=False),
        sa.Column("bundle", sa.String(length=64), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("input_encoding", sa.String(length=16), nullable=False),
        sa.Column("input_body", sa.LargeBinary(), nullable=False),
        sa.Column("computed_ns", sa.BigInteger(), nullable=False),
        sa.Column("expires_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("namespace", "promotion", name=op.f("pk_precomputed_verdicts")),
    )


def downgrade() -> None:
    op.drop_table("precomputed_verdicts")
