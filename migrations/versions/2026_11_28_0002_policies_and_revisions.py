"""Policies, their immutable revisions, and the policy-set version counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 14:09:16.925416
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    op.create_table(
        "policies",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("builtin_hash", sa.String(length=64), nullable=True),
        sa.Column("active_revision", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
    )
    op.create_table(
        "policy_revisions",
        sa.Column("policy_id", sa.String(length=63), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=253), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("tests", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("based_on", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("policy_id", "number", name=op.f("pk_policy_revisions")),
    )
    op.create_table(
        "policy_set",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_set")),
    )


def downgrade() -> None:

    op.drop_table("policy_set")
    op.drop_table("policy_revisions")
    op.drop_table("policies")
