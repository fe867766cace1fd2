"""Every database's decision hot path reads and writes exactly what the portable (SQLAlchemy) path does.

The same cases run over each implementation: SQLite's (stdlib sqlite3) and PostgreSQL's (one JSON-building
statement through asyncpg), each compared with the portable path on the same store.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from policy_server.errors import Unavailable
from policy_server.kargo import Kind, parse_body, stage_of_name
from policy_server.store import Database, DecisionStore, StateStore, upgrade
from policy_server.store._hot._sqlite import DirectSqlite
from policy_server.store._models import DecisionInputRow, DecisionReasonRow, DecisionRow
from policy_server.store._rows import TABLES
from tests.integration.conftest import watch_lines
from tests.support.decisions import decision_entry, entry_id

FAST = {"sqlite": "sqlite", "postgresql": "postgresql"}


def _portable(url: str) -> Database:
    """A Database on the same store with its fast path switched off: the reference."""
    db = Database(url, fast_path=False)
    assert db.hot.name == "portable"
    return db


def _fast(url: str) -> Database:
    db = Database(url)
    assert db.hot.name == FAST[db.dialect], "each database has a hot path of its own"
    return db


async def _questions(db: Database) -> list[tuple[str, str | None, str | None]]:
    async with db.read() as conn:
        promotions = (
            await conn.execute(select(TABLES[Kind.PROMOTION].c.namespace, TABLES[Kind.PROMOTION].c.name))
        ).all()
        stages = (await conn.execute(select(TABLES[Kind.STAGE].c.namespace, TABLES[Kind.STAGE].c.name))).all()
    return (
        [(ns, name, None) for ns, name in promotions]
        + [(ns, None, name) for ns, name in stages]
        + [
            ("kargo-demo", "missing", None),
            ("kargo-demo", None, "missing"),
        ]
    )


async def test_decision_facts_match_at_every_step_of_the_watch_stream(database_url, fixtures_dir):
    direct = _fast(database_url)
    await upgrade(direct)
    reference = _portable(database_url)
    compared = 0
    try:
        for line in watch_lines(fixtures_dir):
            await StateStore(direct).apply(parse_body(line.encode(), "application/x-ndjson"))
            for namespace, promotion, stage in await _questions(direct):
                for freight in (None, "759376cafc8e421500b205c6eef4f1989c05217f"):
                    fast = await StateStore(direct).decision_facts(
                        namespace, promotion=promotion, stage=stage, freight=freight
                    )
                    slow = await StateStore(reference).decision_facts(
                        namespace, promotion=promotion, stage=stage, freight=freight
                    )
                    assert fast == slow, (namespace, promotion, stage, freight)
                    compared += 1
                if stage is not None:
                    assert await StateStore(direct).versions(namespace, stage) == await StateStore(reference).versions(
                        namespace, stage
                    )
    finally:
        await direct.dispose()
        await reference.dispose()
    assert compared > 100


async def _rows(url: str) -> tuple[list, list]:
    db = _portable(url)
    try:
        async with db.read() as conn:
            decisions = [tuple(r) for r in (await conn.execute(select(DecisionRow.__table__).order_by(DecisionRow.id)))]
            reasons = (await conn.execute(select(DecisionReasonRow.__table__))).all()
            inputs = (await conn.execute(select(DecisionInputRow.__table__))).all()
        async with db.write() as conn:  # empty again, for the next path
            for table in ("decision_reasons", "decision_inputs", "decisions"):
                await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await db.dispose()
    return decisions, sorted(tuple(r) for r in reasons) + sorted(tuple(r) for r in inputs)


async def test_the_decision_log_is_written_the_same_way_and_folds_the_same(database_url):
    at = datetime(2026, 11, 1, tzinfo=UTC)
    batches = [
        [decision_entry(1, promotion="p1", stage="prod", fold="deny", at=at)],
        [
            decision_entry(2, promotion="p1", stage="prod", fold="deny", at=at + timedelta(seconds=1)),  # folds into 1
            decision_entry(3, promotion=None, stage="prod", fold="allow", at=at + timedelta(seconds=2)),
            decision_entry(4, promotion="p1", stage="prod", fold="allow", at=at + timedelta(seconds=3)),  # new answer
            decision_entry(5, promotion=None, stage="prod", fold="allow", at=at + timedelta(seconds=4)),  # folds into 3
        ],
    ]
    results = {}
    setup = _portable(database_url)
    await upgrade(setup)
    await setup.dispose()
    for mode, make in (("direct", _fast), ("portable", _portable)):
        db = make(database_url)
        store = DecisionStore(db)
        answers = [await store.record_many(batch) for batch in batches]
        await db.dispose()
        results[mode] = (answers, await _rows(database_url))
    assert results["direct"] == results["portable"]
    answers, (decisions, reasons) = results["direct"]
    assert answers == [
        [("01KZ" + "1".zfill(22), 1)],
        [("01KZ" + "1".zfill(22), 2), (entry_id(3), 1), (entry_id(4), 1), (entry_id(3), 2)],
    ]
    assert len(decisions) == 3 and len(reasons) == 2 + 3  # two reasons, three inputs


async def test_claims_read_the_same(database_url, fixtures_dir):
    db = _fast(database_url)
    await upgrade(db)
    reference = _portable(database_url)
    try:
        for line in watch_lines(fixtures_dir):
            await StateStore(db).apply(parse_body(line.encode(), "application/x-ndjson"))
        now = datetime.now(UTC)
        store = DecisionStore(db)
        assert await store.current_claim("kargo-demo", "prod") is None
        await store.claim("kargo-demo", "prod", "prod.01kztrdxmgg3c76w16pjvk9zds.759376c", entry_id(9), now, now)
        await store.claim("kargo-demo", "uat", "gone", entry_id(10), now, now + timedelta(minutes=2))
        for stage in ("prod", "uat", "test"):
            assert await store.current_claim("kargo-demo", stage) == await DecisionStore(reference).current_claim(
                "kargo-demo", stage
            )
        claim = await store.current_claim("kargo-demo", "prod")
        assert claim is not None and claim.holder_phase is not None and claim.claimed_at == now
    finally:
        await db.dispose()
        await reference.dispose()


async def test_a_failed_sqlite_batch_keeps_nothing_and_is_reported_unavailable(tmp_path):
    path = tmp_path / "store.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await upgrade(db)
    async with db.write() as conn:
        await conn.execute(text("DROP TABLE decision_reasons"))
    with pytest.raises(Unavailable) as raised:
        await DecisionStore(db).record_many(
            [decision_entry(1, promotion="p1", stage="prod", fold="deny", at=datetime.now(UTC))]
        )
    assert "decision_reasons" in str(raised.value)
    # Nothing of the failed batch was kept.
    async with db.read() as conn:
        assert (await conn.execute(select(DecisionRow.id))).all() == []
    await db.dispose()


async def test_a_failed_sqlite_commit_leaves_the_next_batch_able_to_begin(tmp_path):
    """A COMMIT can fail and keep its transaction open (here a deferred foreign key, as a disk error would): the
    batch writer must not stay inside it, or every later batch of decisions would be refused."""
    direct = DirectSqlite(str(tmp_path / "store.db"))
    conn = await direct.begin_batch()
    assert conn is not None
    direct.rollback_batch()
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")

    assert await direct.begin_batch() is conn
    conn.execute("INSERT INTO child VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError):
        direct.commit_batch()

    assert await direct.begin_batch() is conn
    conn.execute("INSERT INTO parent VALUES (2)")
    direct.commit_batch()
    assert conn.execute("SELECT id FROM parent").fetchall() == [(2,)]
    assert conn.execute("SELECT parent FROM child").fetchall() == []
    direct.close()


@pytest.mark.parametrize("mark", ["wal-index", "pragma"])
async def test_a_sqlite_probe_asked_again_sees_every_commit_of_another_process(
    tmp_path, fixtures_dir, mark, monkeypatch
):
    """A repeated question's probe is answered again without its statement while nothing was committed to the file;
    a commit by another process (a state change, a claim, a policy-set change) is seen by the very next probe. The
    file's changes are seen in its WAL index, or (when it cannot be mapped) by SQLite's ``data_version``."""
    if mark == "pragma":
        monkeypatch.setattr(DirectSqlite, "_map_wal_index", lambda self, conn: None)
    path = tmp_path / "store.db"
    db = _fast(f"sqlite+aiosqlite:///{path}")
    await upgrade(db)
    p6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"
    try:
        for line in watch_lines(fixtures_dir):
            await StateStore(db).apply(parse_body(line.encode(), "application/x-ndjson"))
        state = StateStore(db)
        first = await state.probe("kargo-demo", "prod", p6)
        statements: list[str] = []
        db.hot.direct._read_connection().set_trace_callback(statements.append)  # type: ignore[attr-defined]
        assert await state.probe("kargo-demo", "prod", p6) == first
        # The probe's statement was not run again.
        assert statements == ([] if mark == "wal-index" else ["PRAGMA data_version"])

        def other_process(sql: str) -> None:
            code = f"import sqlite3; c = sqlite3.connect({str(path)!r}); c.execute({sql!r}); c.commit()"
            subprocess.run([sys.executable, "-c", code], check=True)

        other_process("UPDATE state_versions SET version = version + 1 WHERE scope = 'stage/prod'")
        after_change = await state.probe("kargo-demo", "prod", p6)
        assert after_change.versions == (first.versions[0], first.versions[1] + 1, first.versions[2])
        other_process("UPDATE policy_set SET version = version + 1 WHERE id = 1")
        assert (await state.probe("kargo-demo", "prod", p6)).policies == first.policies + 1
        claimed = "INSERT INTO stage_claims (namespace, stage, promotion, decision_id, claimed_at, expires_at)"
        times = "'2026-01-01 00:00:00', '2099-01-01 00:00:00'"
        other_process(f"{claimed} VALUES ('kargo-demo', 'prod', 'x', 'd', {times})")
        claim = (await state.probe("kargo-demo", "prod", p6)).claim
        assert claim is not None and claim.promotion == "x"
        assert (await state.probe("kargo-demo", "uat", None)).versions[0] == "uat"  # another question: its own
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_postgres_reads_concurrent_probes_together_and_never_shares_one_begun_before_a_question(
    fixtures_dir, fresh_postgres_url
):
    """Questions arriving while a probe round trip is in flight are read together by the next one, each exactly as
    the portable path reads it alone; a question never gets a reading that began before it arrived."""
    url = fresh_postgres_url
    db = _fast(url)
    await upgrade(db)
    reference = _portable(url)
    try:
        for line in watch_lines(fixtures_dir):
            await StateStore(db).apply(parse_body(line.encode(), "application/x-ndjson"))
        now = datetime.now(UTC)
        p6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"
        await DecisionStore(db).record_many([decision_entry(1, promotion=p6, stage="prod", fold="deny", at=now)])
        await DecisionStore(db).record_many([decision_entry(2, promotion=None, stage="prod", fold="allow", at=now)])
        await DecisionStore(db).claim("kargo-demo", "prod", "gone", entry_id(3), now, now + timedelta(minutes=2))
        keys = [(ns, stage_of_name(p) or "prod", p) for ns, p, _ in await _questions(db) if p is not None]
        keys += [(ns, s, None) for ns, _, s in await _questions(db) if s is not None]
        hot = db.hot
        batches: list[int] = []
        read_many = hot._probe_many  # type: ignore[attr-defined]

        async def counted(driver: Any, batch: list[tuple[str, str, str | None]]) -> Any:
            batches.append(len(batch))
            return await read_many(driver, batch)

        hot._probe_many = counted  # type: ignore[attr-defined]
        together = await asyncio.gather(*(hot.probe(*key) for key in keys))
        assert sum(batches) == len(keys) and len(batches) < len(keys)  # read together, none twice
        for key, probe in zip(keys, together, strict=True):
            assert probe == await reference.hot.probe(*key), key
        assert any(p.last is not None for p in together) and any(p.claim is not None for p in together)

        # A round trip in flight (held after its reading) is not shared with a question arriving meanwhile.
        held, release = asyncio.Event(), asyncio.Event()

        async def slow(driver: Any, batch: list[tuple[str, str, str | None]]) -> Any:
            read = await read_many(driver, batch)
            if not held.is_set():
                held.set()
                await release.wait()
            return read

        hot._probe_many = slow  # type: ignore[attr-defined]
        question = ("kargo-demo", "prod", p6)
        first = asyncio.ensure_future(hot.probe(*question))
        await held.wait()
        async with db.write() as conn:  # committed and acknowledged while the first reading is held
            await conn.execute(text("UPDATE state_versions SET version = version + 1 WHERE scope = 'stage/prod'"))
        second = asyncio.ensure_future(hot.probe(*question))
        await asyncio.sleep(0.05)
        release.set()
        before, after = await first, await second
        assert after.versions[1] == before.versions[1] + 1

        # The connection probes are read on is lost during a round trip: the question on it gets Unavailable, the
        # next one is read on another connection.
        servers: list[int] = []

        async def lost(driver: Any, batch: list[tuple[str, str, str | None]]) -> Any:
            servers.append(driver.get_server_pid())
            async with db.write() as conn:  # (waits until the server process has ended)
                await conn.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": servers[-1]})
            return await read_many(driver, batch)

        async def noted(driver: Any, batch: list[tuple[str, str, str | None]]) -> Any:
            servers.append(driver.get_server_pid())
            return await read_many(driver, batch)

        hot._probe_many = lost  # type: ignore[attr-defined]
        with pytest.raises(Unavailable):
            await hot.probe(*question)
        hot._probe_many = noted  # type: ignore[attr-defined]
        assert await hot.probe(*question) == await reference.hot.probe(*question)
        assert servers[-1] != servers[0]
    finally:
        await db.dispose()
        await reference.dispose()


def test_taking_the_probe_mark_leaves_sqlite_s_locks_on_the_wal_index_held(tmp_path):
    """SQLite's connections hold POSIX locks on ``<file>-shm``, among them a shared lock on its byte 128 telling every
    other process that the WAL index is in use. Closing any descriptor of that file releases every such lock the
    process holds (https://sqlite.org/howtocorrupt.html, 2.2): another process may then rebuild the index under
    this one's readers and writers ("database disk image is malformed", "locking protocol" under load). Mapping
    the index for the probe's mark, and opening it again after a close, must leave them held."""
    path = tmp_path / "store.db"
    other = sqlite3.connect(path)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("CREATE TABLE t (x)")
    other.commit()
    direct = DirectSqlite(str(path))
    taker = (
        "import fcntl, sys\n"
        "with open(sys.argv[1], 'r+b') as index:\n"
        "    fcntl.lockf(index, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)\n"
    )

    def another_process_may_take_the_index() -> bool:
        return subprocess.run([sys.executable, "-c", taker, f"{path}-shm"], capture_output=True).returncode == 0

    try:
        assert not another_process_may_take_the_index()  # (the plain connection holds it)
        for _ in range(2):
            first = direct.data_version()
            assert isinstance(first[1], bytes)  # the mark is the mapped header
            other.execute("INSERT INTO t VALUES (1)")
            other.commit()
            assert direct.data_version() != first
            assert not another_process_may_take_the_index()
            direct.close()  # opened again by the next mark
            assert not another_process_may_take_the_index()
    finally:
        direct.close()
        other.close()
