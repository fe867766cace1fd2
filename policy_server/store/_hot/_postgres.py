"""The hot path on PostgreSQL: a decision's facts in one statement that builds them as JSON, through asyncpg.

Read statement by statement (the portable path), a fresh decision's facts took eight round trips inside a
REPEATABLE READ transaction, each compiled by SQLAlchemy. Here one statement reads the Promotion, its Stage,
the queue, the recent history, the newest Succeeded Promotion, the run that verifies it, the Freight and the
state versions, and PostgreSQL returns them as one JSON document: one round trip, one snapshot (a single
statement sees one), no transaction to open or close. Statements are prepared once per connection (asyncpg's
statement cache). Decisions are logged as the portable path logs them (advisory locks per question).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from policy_server.errors import Unavailable
from policy_server.kargo import PromotionFacts, RunFacts
from policy_server.store._hot._portable import PortableHotPath
from policy_server.store._reads import stage_state
from policy_server.store._rows import PROMOTION_COLUMNS, RUN_COLUMNS, STAGE_COLUMNS, AttrRow
from policy_server.store._types import Claim, DecisionFacts
from policy_server.store._versions import FREIGHT_SCOPE, Versions, stage_scope, versions_of

if TYPE_CHECKING:
    from policy_server.store._db import Database

_P = ", ".join(PROMOTION_COLUMNS)
_OF_STAGE = "FROM promotions WHERE namespace = $1 AND stage = (SELECT stage FROM target) AND NOT deleted"
_FACTS = f"""
WITH p AS (
  SELECT {_P} FROM promotions WHERE $2::text IS NOT NULL AND namespace = $1 AND name = $2 AND NOT deleted
), target AS (
  SELECT CASE WHEN $2::text IS NULL THEN $3::text ELSE (SELECT stage FROM p) END AS stage
), st AS (
  SELECT {", ".join(STAGE_COLUMNS)} FROM stages
  WHERE namespace = $1 AND name = (SELECT stage FROM target) AND NOT deleted
), q AS (
  SELECT {_P} {_OF_STAGE} AND NOT terminal AND EXISTS (SELECT 1 FROM st)
), r AS (
  SELECT {_P} {_OF_STAGE} AND terminal AND EXISTS (SELECT 1 FROM st) ORDER BY queue_key DESC LIMIT $5
), l AS (
  SELECT {_P} {_OF_STAGE} AND phase = 'Succeeded' AND EXISTS (SELECT 1 FROM st) ORDER BY queue_key DESC LIMIT 1
), run AS (
  SELECT {", ".join("a." + c for c in RUN_COLUMNS)} FROM analysis_runs AS a, l
  WHERE a.namespace = $1 AND a.stage = l.stage AND a.freight_collection = l.freight_collection
    AND a.created_at >= l.finished_at AND NOT a.deleted
  ORDER BY a.created_at DESC, a.name DESC LIMIT 1
), f AS (
  SELECT name, object FROM freight WHERE namespace = $1 AND NOT deleted AND name IN (
    SELECT freight FROM q WHERE freight IS NOT NULL
    UNION SELECT freight FROM p WHERE freight IS NOT NULL
    UNION SELECT $4::text WHERE $4::text IS NOT NULL)
), v AS (
  SELECT scope, version FROM state_versions
  WHERE namespace = $1 AND scope IN ('stage/' || (SELECT stage FROM target), '{FREIGHT_SCOPE}')
)
SELECT json_build_object(
  'p', (SELECT row_to_json(p) FROM p),
  'target', (SELECT stage FROM target),
  'stage', (SELECT row_to_json(st) FROM st),
  'queue', (SELECT coalesce(json_agg(q), '[]') FROM q),
  'recent', (SELECT coalesce(json_agg(r ORDER BY r.queue_key DESC), '[]') FROM r),
  'last', (SELECT row_to_json(l) FROM l),
  'run', (SELECT row_to_json(run) FROM run),
  'freight', (SELECT coalesce(json_object_agg(name, object), '{{}}') FROM f),
  'versions', (SELECT coalesce(json_object_agg(scope, version), '{{}}') FROM v)
)::text
"""
_VERSIONS = "SELECT scope, version FROM state_versions WHERE namespace = $1 AND scope IN ($2, $3)"
_CLAIM = (
    "SELECT c.promotion, c.decision_id, c.claimed_at, c.expires_at, p.phase FROM stage_claims AS c"
    " LEFT OUTER JOIN promotions AS p ON p.namespace = c.namespace AND p.name = c.promotion AND NOT p.deleted"
    " WHERE c.namespace = $1 AND c.stage = $2"
)
_PROMOTION_TIMES = ("created_at", "started_at", "finished_at")
_RUN_TIMES = ("created_at", "started_at", "completed_at")
# SQLSTATE classes that mean "the server is not there right now" (as in _db.translate_errors).
_UNAVAILABLE_SQLSTATE = ("08", "57", "53")


class PostgresHotPath(PortableHotPath):
    """One statement per read on the pool's raw asyncpg connections; logging as the portable path does."""

    name = "postgresql"

    def __init__(self, db: Database) -> None:
        super().__init__(db)

    async def decision_facts(
        self, namespace: str, promotion: str | None, stage: str | None, freight: str | None, recent: int
    ) -> DecisionFacts:
        async with self._driver() as driver:
            text = await driver.fetchval(_FACTS, namespace, promotion, stage, freight, max(recent, 0))
        found = msgspec.json.decode(text)
        p_facts = _promotion(found["p"]) if found["p"] is not None else None
        target = found["target"]
        state = None
        if found["stage"] is not None:
            row = AttrRow(found["stage"])
            row.created_at, row.recorded_at = _time(row.created_at), _time(row.recorded_at)
            last = _promotion(found["last"]) if found["last"] is not None else None
            runs = []
            if row.has_verification and last is not None and last.freight_collection and last.finished_at:
                runs = [_run(found["run"])] if found["run"] is not None else []
            state = stage_state(
                row, [_promotion(q) for q in found["queue"]], [_promotion(r) for r in found["recent"]], last, runs
            )
        freight_objects = {name: msgspec.json.decode(obj) for name, obj in found["freight"].items()}
        versions = versions_of(target, found["versions"]) if target is not None else None
        return DecisionFacts(p_facts, state, freight_objects, versions)

    async def versions(self, namespace: str, stage: str) -> Versions:
        async with self._driver() as driver:
            rows = await driver.fetch(_VERSIONS, namespace, stage_scope(stage), FREIGHT_SCOPE)
        return versions_of(stage, {row["scope"]: row["version"] for row in rows})

    async def current_claim(self, namespace: str, stage: str) -> Claim | None:
        async with self._driver() as driver:
            row = await driver.fetchrow(_CLAIM, namespace, stage)
        if row is None:
            return None
        return Claim(row["promotion"], row["decision_id"], row["claimed_at"], row["expires_at"], row["phase"])

    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled connection's asyncpg connection, outside any transaction; lost connections → Unavailable."""
        async with self.db.autocommit_connection() as conn:
            raw = await conn.get_raw_connection()
            try:
                yield raw.driver_connection
            except Exception as exc:
                if not _connection_trouble(exc):
                    raise
                await conn.invalidate()
                raise Unavailable(f"the database connection was lost: {str(exc).strip()[:200]}") from exc


def _connection_trouble(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state[:2] in _UNAVAILABLE_SQLSTATE:
        return True
    kind = type(exc).__name__
    return isinstance(exc, (ConnectionError, OSError)) or kind in (
        "ConnectionDoesNotExistError",
        "InterfaceError",
        "InternalClientError",
        "CannotConnectNowError",
    )


def __setattr__(self, name: str, value: Any) -> None:
    self[name] = value


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value is not None else None


def _promotion(row: dict[str, Any]) -> PromotionFacts:
    for column in _PROMOTION_TIMES:
        row[column] = _time(row[column])
    return PromotionFacts(**row)


def _run(row: dict[str, Any]) -> RunFacts:
    for column in _RUN_TIMES:
        row[column] = _time(row[column])
    return RunFacts(**row)
