"""Data: the inputs of decisions logged so far are copied into decision_inputs (as JSON, uncompressed).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 18:15:01.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    body = "convert_to(input, 'UTF8')" if op.get_bind().dialect.name == "postgresql" else "CAST(input AS BLOB)"
    op.execute(
        "INSERT INTO decision_inputs (decision_id, encoding, body) "
        f"SELECT id, 'json', {body} FROM decisions WHERE id NOT IN (SELECT decision_id FROM decision_inputs)"
    )


def downgrade() -> None:
    # The inputs stay in decisions.input until revision 0009 drops it; nothing to undo here.
    pass
