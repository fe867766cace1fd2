"""Per-Stage and per-namespace-Freight state versions, so decisions can reuse an input while they hold.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 17:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    op.create_table(
        "state_versions",
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("scope", sa.String(length=260), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "scope", name=op.f("pk_state_versions")),
    )


def downgrade() -> None:

    op.drop_table("state_versions")
