"""A revision may declare a JSON Schema for its parameters (checked at every write).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 21:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    with op.batch_alter_table("policy_revisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parameters_schema", sa.Text(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("policy_revisions", schema=None) as batch_op:
        batch_op.drop_column("parameters_schema")
