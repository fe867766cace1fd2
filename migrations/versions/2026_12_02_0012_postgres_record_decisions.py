"""PostgreSQL: log a batch of decisions in one round trip (a function the PostgreSQL hot path calls).

The function does what the portable path does in a transaction: take each question's advisory lock (in one
order), then per entry fold it into the question's newest row when the answer is the same, or insert it with
its input and reasons. It runs in the calling statement's transaction. SQLite has no such function: its hot
path writes in-process.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 01:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION policy_server_record_decisions(entries jsonb)
RETURNS TABLE (out_id text, out_repeats bigint)
LANGUAGE plpgsql AS $$
DECLARE
  e jsonb;
  last_id text;
  last_fold text;
  last_count bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(s.h) FROM (
    SELECT DISTINCT hashtextextended('decisions/' || (x->>'subject'), 0) AS h FROM jsonb_array_elements(entries) AS x
  ) AS s ORDER BY s.h;
  FOR e IN SELECT value FROM jsonb_array_elements(entries) LOOP
    last_id := NULL;
    IF e->>'promotion' IS NOT NULL THEN
      SELECT d.id, d.fold_key, d.repeat_count INTO last_id, last_fold, last_count FROM decisions AS d
      WHERE d.namespace = e->>'namespace' AND d.promotion = e->>'promotion' ORDER BY d.id DESC LIMIT 1;
    ELSE
      SELECT d.id, d.fold_key, d.repeat_count INTO last_id, last_fold, last_count FROM decisions AS d
      WHERE d.namespace = e->>'namespace' AND d.stage = e->>'stage' AND d.prospective ORDER BY d.id DESC LIMIT 1;
    END IF;
    IF last_id IS NOT NULL AND last_fold = e->>'fold_key' THEN
      UPDATE decisions SET last_at = (e->>'evaluated_at')::timestamptz, repeat_count = decisions.repeat_count + 1
      WHERE decisions.id = last_id;
      out_id := last_id;
      out_repeats := last_count + 1;
    ELSE
      INSERT INTO decisions (id, namespace, stage, promotion, prospective, freight, allow, claimed, evaluated_at,
                             last_at, repeat_count, fold_key, input_hash, duration_ms, caller, result)
      VALUES (e->>'id', e->>'namespace', e->>'stage', e->>'promotion', (e->>'prospective')::boolean, e->>'freight',
              (e->>'allow')::boolean, (e->>'claimed')::boolean, (e->>'evaluated_at')::timestamptz,
              (e->>'evaluated_at')::timestamptz, 1, e->>'fold_key', e->>'input_hash', (e->>'duration_ms')::float8,
              e->>'caller', e->>'result');
      INSERT INTO decision_inputs (decision_id, encoding, body)
      VALUES (e->>'id', e->>'encoding', decode(e->>'body', 'base64'));
      INSERT INTO decision_reasons (decision_id, position, kind, policy, code)
      SELECT e->>'id', r.ordinality - 1, r.value->>0, r.value->>1, r.value->>2
      FROM jsonb_array_elements(e->'reasons') WITH ORDINALITY AS r;
      out_id := e->>'id';
      out_repeats := 1;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS policy_server_record_decisions(jsonb)")
