"""The hot path on PostgreSQL: one round trip per read or logged batch, through an asyncpg pool of its own.

Read statement by statement (the portable path), a fresh decision's facts took eight round trips inside a
REPEATABLE READ transaction, each compiled by SQLAlchemy, on a pooled connection pinged at every checkout. Here
one statement reads the Promotion, its Stage, the queue, the recent history, the newest Succeeded Promotion,
the run that verifies it, the Freight and the state versions, and PostgreSQL returns them as one JSON document:
one round trip, one snapshot (a single statement sees one), no transaction to open or close. A batch of
decisions is logged by one call of ``policy_server_record_decisions`` (migration 0012), which takes the
questions' advisory locks and folds or inserts each entry as the portable path does, in one transaction.
Statements are prepared once per connection (asyncpg's statement cache).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
from sqlalchemy.engine import make_url

from policy_server.errors import Unavailable
from policy_server.kargo import PromotionFacts, RunFacts
from policy_server.store._db import connection_trouble
from policy_server.store._hot._portable import PortableHotPath, lock_subject
from policy_server.store._reads import stage_state
from policy_server.store._rows import (
    PRECOMPUTED_COLUMNS,
    PROMOTION_COLUMNS,
    RUN_COLUMNS,
    STAGE_COLUMNS,
    AttrRow,
    decision_row,
    encode_input,
    reason_rows,
    verdict_of,
)
from policy_server.store._types import Claim, DecisionEntry, DecisionFacts, PrecomputedVerdict, Probe
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
  'versions', (SELECT coalesce(json_object_agg(scope, version), '{{}}') FROM v),
  'policies', (SELECT version FROM policy_set WHERE id = 1)
)::text
"""
_VERSIONS = "SELECT scope, version FROM state_versions WHERE namespace = $1 AND scope IN ($2, $3)"
_CLAIM = (
    "SELECT c.promotion, c.decision_id, c.claimed_at, c.expires_at, p.phase FROM stage_claims AS c"
    " LEFT OUTER JOIN promotions AS p ON p.namespace = c.namespace AND p.name = c.promotion AND NOT p.deleted"
    " WHERE c.namespace = $1 AND c.stage = $2"
)
# The probes of a batch of questions (namespace, Stage, Promotion or NULL for a prospective one, the Stage's state
# scope), numbered from 1 in ``i``; the policy-set version once, with ``i`` 0. One statement, one snapshot.
_PROBES = """
WITH k AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    WITH ORDINALITY AS k(namespace, stage, promotion, scope, i)
)
SELECT k.i, 0 AS part, v.scope, v.version, NULL AS promotion, NULL AS decision_id,
  NULL::timestamptz AS claimed_at, NULL::timestamptz AS expires_at, NULL AS phase
  FROM k JOIN state_versions AS v ON v.namespace = k.namespace AND v.scope IN (k.scope, $5)
UNION ALL SELECT 0, 1, NULL, version, NULL, NULL, NULL, NULL, NULL FROM policy_set WHERE id = 1
UNION ALL SELECT k.i, 2, NULL, NULL, c.promotion, c.decision_id, c.claimed_at, c.expires_at, p.phase
  FROM k JOIN stage_claims AS c ON c.namespace = k.namespace AND c.stage = k.stage
  LEFT OUTER JOIN promotions AS p ON p.namespace = c.namespace AND p.name = c.promotion AND NOT p.deleted
UNION ALL SELECT k.i, 3, d.fold_key, d.repeat_count, NULL, d.id, NULL, NULL, NULL FROM k CROSS JOIN LATERAL (
  SELECT fold_key, repeat_count, id FROM decisions
  WHERE k.promotion IS NOT NULL AND namespace = k.namespace AND promotion = k.promotion ORDER BY id DESC LIMIT 1
) AS d
UNION ALL SELECT k.i, 3, d.fold_key, d.repeat_count, NULL, d.id, NULL, NULL, NULL FROM k CROSS JOIN LATERAL (
  SELECT fold_key, repeat_count, id FROM decisions
  WHERE k.promotion IS NULL AND namespace = k.namespace AND stage = k.stage AND prospective ORDER BY id DESC LIMIT 1
) AS d
"""
_PRECOMPUTED = (
    f"SELECT {', '.join(PRECOMPUTED_COLUMNS)} FROM precomputed_verdicts WHERE namespace = $1 AND promotion = $2"
)
_PROMOTION_TIMES = ("created_at", "started_at", "finished_at")
_RUN_TIMES = ("created_at", "started_at", "completed_at")


_ADD_REPEATS = "UPDATE decisions SET repeat_count = repeat_count + $2, last_at = $3 WHERE id = $1"
_RECORD = "SELECT out_id, out_repeats FROM policy_server_record_decisions($1::jsonb)"
_json = msgspec.json.Encoder()


class PostgresHotPath(PortableHotPath):
    """One statement per read, one function call per logged batch, on asyncpg connections of its own."""

    name = "postgresql"

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._pool: asyncpg.Pool | None = None
        self._owner: tuple[int, asyncio.AbstractEventLoop] | None = None
        self._opening = asyncio.Lock()
        self._probes_loop: asyncio.AbstractEventLoop | None = None
        self._probes_waiting: dict[tuple[str, str, str | None], asyncio.Future[Probe]] = {}
        """Questions whose probe the next round trip reads (each shared by every caller asking it meanwhile)."""
        self._probes_task: asyncio.Task[None] | None = None
        url = make_url(db.url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)

    async def record_decisions(self, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
        document = _json.encode([_entry(e) for e in entries]).decode()
        async with self._driver() as driver:
            rows = await driver.fetch(_RECORD, document)
        return [(row["out_id"], row["out_repeats"]) for row in rows]

    async def add_repeats(self, repeats: list[tuple[str, int, datetime]]) -> None:
        if repeats:
            async with self._driver() as driver:
                await driver.executemany(_ADD_REPEATS, [(row_id, n, at) for row_id, n, at in repeats])

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
        return DecisionFacts(p_facts, state, freight_objects, versions, found["policies"] or 0)

    async def versions(self, namespace: str, stage: str) -> Versions:
        async with self._driver() as driver:
            rows = await driver.fetch(_VERSIONS, namespace, stage_scope(stage), FREIGHT_SCOPE)
        return versions_of(stage, {row["scope"]: row["version"] for row in rows})

    async def probe(self, namespace: str, stage: str, promotion: str | None) -> Probe:
        """The probe of one question, read by the next round trip: questions arriving while one is in flight
        are read together by the one after it (one statement, one snapshot, each question's probe taken after it
        arrived), and the same question asked meanwhile shares its reading. Under load a round trip serves many
        questions; alone, a question is read at once."""
        loop = asyncio.get_running_loop()
        if self._probes_loop is not loop:
            self._probes_loop, self._probes_waiting, self._probes_task = loop, {}, None
        key = (namespace, stage, promotion)
        waiting = self._probes_waiting.get(key)
        if waiting is None:
            waiting = self._probes_waiting[key] = loop.create_future()
        if self._probes_task is None or self._probes_task.done():
            self._probes_task = loop.create_task(self._read_probes())
        return await asyncio.shield(waiting)  # a caller that gives up does not cancel the others' reading

    async def _read_probes(self) -> None:
        """Read the waiting questions' probes, batch after batch, on one connection while questions keep coming (a
        pool checkout and return per round trip took a quarter of the reading's Python time in a profile)."""
        while self._probes_waiting:
            batch, self._probes_waiting = self._probes_waiting, {}
            try:
                async with self._driver() as driver:
                    while True:
                        probes = await self._probe_many(driver, list(batch))
                        for key, future in batch.items():
                            if not future.done():
                                future.set_result(probes[key])
                        if not self._probes_waiting:
                            break
                        batch, self._probes_waiting = self._probes_waiting, {}
            except BaseException as exc:
                for future in batch.values():
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _probe_many(
        self, driver: asyncpg.Connection, keys: list[tuple[str, str, str | None]]
    ) -> dict[tuple[str, str, str | None], Probe]:
        namespaces, stages, promotions = ([k[i] for k in keys] for i in range(3))
        scopes = [stage_scope(stage) for stage in stages]
        rows = await driver.fetch(_PROBES, namespaces, stages, promotions, scopes, FREIGHT_SCOPE)
        found: list[dict[str, int]] = [{} for _ in keys]
        claims: list[Claim | None] = [None] * len(keys)
        lasts: list[tuple[str, str, int] | None] = [None] * len(keys)
        policies = 0
        for row in rows:
            part, i = row["part"], row["i"] - 1
            if part == 0:
                found[i][row["scope"]] = row["version"]
            elif part == 1:
                policies = row["version"]
            elif part == 3:
                lasts[i] = (row["decision_id"], row["scope"], row["version"])
            else:
                claims[i] = _claim(row)
        return {key: Probe(versions_of(key[1], found[i]), policies, claims[i], lasts[i]) for i, key in enumerate(keys)}

    async def precomputed(self, namespace: str, promotion: str) -> PrecomputedVerdict | None:
        async with self._driver() as driver:
            row = await driver.fetchrow(_PRECOMPUTED, namespace, promotion)
        return verdict_of(tuple(row)) if row is not None else None

    async def current_claim(self, namespace: str, stage: str) -> Claim | None:
        async with self._driver() as driver:
            row = await driver.fetchrow(_CLAIM, namespace, stage)
        return _claim(row) if row is not None else None

    async def close(self) -> None:
        pool, owner = self._pool, self._owner
        self._pool = self._owner = None
        if pool is not None and owner == (os.getpid(), asyncio.get_running_loop()):
            await pool.close()  # another process's or loop's pool is not ours to close

    async def _open(self) -> asyncpg.Pool:
        """This process's and event loop's pool (a forked worker or a new loop opens its own)."""
        here = (os.getpid(), asyncio.get_running_loop())
        if self._pool is not None and self._owner == here:
            return self._pool
        async with self._opening:
            if self._pool is None or self._owner != here:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=max(2, self.db.pool_size),
                    max_inactive_connection_lifetime=300,
                    reset=_keep,
                    # Plan once per connection: planning the facts statement took as long as running it, and
                    # its plan (index lookups by equality) does not depend on the values.
                    server_settings={"plan_cache_mode": "force_generic_plan"},
                )
                self._owner = here
        return self._pool

    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled asyncpg connection, outside any transaction; a lost or refused connection → Unavailable."""
        try:
            pool = await self._open()
            async with pool.acquire() as driver:
                yield driver
        except Exception as exc:
            if not connection_trouble(exc):
                raise
            raise Unavailable(f"the database is unavailable: {str(exc).strip()[:200]}") from exc


def _claim(row: Any) -> Claim:
    return Claim(row["promotion"], row["decision_id"], row["claimed_at"], row["expires_at"], row["phase"])


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


async def _keep(_connection: asyncpg.Connection) -> None:
    """No reset when a connection goes back to the pool (asyncpg's default costs a round trip): these statements
    leave no session state behind (no SET, no LISTEN, only transaction-scoped advisory locks)."""


def _entry(entry: DecisionEntry) -> dict[str, Any]:
    """A decision as the logging function reads it (the same row shapes as every other path)."""
    row = decision_row(entry)
    encoding, body = entry.stored_input or encode_input(entry.input)
    return {
        **row,
        "evaluated_at": entry.evaluated_at.isoformat(),
        "subject": lock_subject(entry),
        "encoding": encoding,
        "body": base64.b64encode(body).decode(),
        "reasons": [[r["kind"], r["policy"], r["code"]] for r in reason_rows(entry)],
    }
