"""The hot path on a SQLite file: stdlib ``sqlite3``, no ORM, no driver thread per query.

A decision reads a handful of indexed rows and logs one; through SQLAlchemy over aiosqlite each statement
costs a compile and two thread hops (~0.3 ms), which dominated a decision. Here reads run synchronously on
the event loop's thread (an indexed read of a WAL database takes tens of microseconds and never waits for
a writer); a repeated decision reads everything it checks in one statement (``probe``). The decision log writes
a batch's statements on the loop's thread too and commits (the fsync) on a thread: on a thread, every statement
waited for the GIL back from the busy loop. Decision batches of the processes sharing the file take turns by an
advisory file lock (``<file>-decisions.lock``) before SQLite's write lock; SQLite's busy handler sleeps between
tries, the file lock's waiter wakes when it is released. Batches take the same in-process write gate as every
other writer of the store.

Values are stored exactly as SQLAlchemy stores them on SQLite (booleans as 0/1, UTC datetimes as naive
``YYYY-MM-DD HH:MM:SS.ffffff`` text), so both paths read and write the same rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import mmap
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import msgspec

from policy_server.errors import Unavailable
from policy_server.kargo import PromotionFacts, RunFacts
from policy_server.store._reads import freight_names, stage_state
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
from policy_server.store._types import Claim, DecisionEntry, DecisionFacts, PrecomputedVerdict, Probe, StageState
from policy_server.store._versions import FREIGHT_SCOPE, Versions, stage_scope, versions_of

if TYPE_CHECKING:
    from policy_server.store._db import Database

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for SQLite's lock (every connection to the file uses it)."""
_WAL_INDEX_HEADER = 96
"""The two copies of the WAL-index header at the start of ``<file>-shm`` (https://sqlite.org/walformat.html)."""
_WAL_INDEXES: dict[tuple[int, int], mmap.mmap] = {}
"""The WAL indexes this process mapped, by (device, inode), and the descriptors they were opened with (below): never
closed. Closing any descriptor of a file releases every POSIX lock the process holds on it, SQLite's included (its
connections' read locks, and the one telling other processes the index is in use: without it, another process
rebuilds the index under this one's connections; https://sqlite.org/howtocorrupt.html, 2.2). A mapping outlives
its reader: it is read only while a reader of this process has the index open, so never past the file's end."""
_WAL_INDEX_FILES: list[int] = []
_PROBES_KEPT = 10_000
"""Probes kept between two commits to the file (distinct questions; then they are read again)."""


def to_db_time(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy stores it on SQLite."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def from_db_time(value: str | None) -> datetime | None:
    """The stored text back as an aware UTC datetime."""
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


_T = TypeVar("_T")


class DirectSqlite:
    """One SQLite file's direct connections: a reader for the event loop's thread, a writer for batches."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader: sqlite3.Connection | None = None
        self._reader_pid = 0
        self._readers = 0
        """Reader connections opened so far (a new one's ``data_version`` counts from its own start)."""
        self._wal_index: mmap.mmap | None = None
        """The file's WAL index (``<file>-shm``), mapped while the reader holds it open."""
        self._writer: sqlite3.Connection | None = None
        self._writer_pid = 0
        self._writer_lock = threading.Lock()
        self._batch: sqlite3.Connection | None = None
        self._batch_file: BinaryIO | None = None
        self._batch_pid = 0
        self._batch_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _read_connection(self) -> sqlite3.Connection:
        if self._reader is None or self._reader_pid != os.getpid():
            self._unmap()
            self._reader = self._connect()
            self._reader.execute("PRAGMA query_only=ON")
            self._reader_pid = os.getpid()
            self._readers += 1
            self._wal_index = self._map_wal_index(self._reader)
        return self._reader

    def _map_wal_index(self, conn: sqlite3.Connection) -> mmap.mmap | None:
        """The WAL index this reader opened, mapped read-only; None when the file is not in WAL mode.

        While any connection has the index open, SQLite never shrinks it (only the first to open it does), so the
        mapping is valid while the reader is open. Nothing opened here is ever closed (see ``_WAL_INDEXES``)."""
        with _translated():
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                return None
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # a read opens the index
        try:
            index = os.stat(f"{self.path}-shm")
            kept = _WAL_INDEXES.get((index.st_dev, index.st_ino))
            if kept is not None:
                return kept
            if index.st_size < _WAL_INDEX_HEADER:
                return None
            descriptor = os.open(f"{self.path}-shm", os.O_RDONLY | os.O_CLOEXEC)
            _WAL_INDEX_FILES.append(descriptor)
            opened = os.fstat(descriptor)
            if (opened.st_dev, opened.st_ino) != (index.st_dev, index.st_ino):
                return None  # (replaced meanwhile: the mark falls back to data_version)
            mapped = mmap.mmap(descriptor, _WAL_INDEX_HEADER, access=mmap.ACCESS_READ)
            _WAL_INDEXES[(index.st_dev, index.st_ino)] = mapped
            return mapped
        except (OSError, ValueError):
            return None

    def _unmap(self) -> None:
        self._wal_index = None  # (the mapping itself stays open: see _WAL_INDEXES)

    def data_version(self) -> tuple[int, int | bytes]:
        """A mark that changes whenever any connection, of this process or another, has committed to the file
        since it was last taken: while it stays the same, every read of the reader answers as it did.

        In WAL mode it is the WAL-index header, read from shared memory (no statement, no system call): SQLite
        writes it as the last step of every commit, with a counter ``iChange`` incremented by each (both copies:
        a reader catching a header being written sees neither old one, so it only reads again). Otherwise it is
        SQLite's ``data_version`` of the reader connection, which never writes."""
        conn = self._read_connection()
        if self._wal_index is not None:
            return self._readers, self._wal_index[:_WAL_INDEX_HEADER]
        with _translated():
            return self._readers, conn.execute("PRAGMA data_version").fetchone()[0]

    def fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows of one statement (a single statement reads one snapshot without a transaction)."""
        with _translated():
            return self._read_connection().execute(sql, params).fetchall()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot (a deferred read transaction), on the calling thread."""
        conn = self._read_connection()
        with _translated():
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed when the block ends; call it off the loop."""
        with self._writer_lock:
            if self._writer is None or self._writer_pid != os.getpid():
                self._writer = self._connect()
                self._writer_pid = os.getpid()
            conn = self._writer
            with _translated():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")

    async def begin_batch(self) -> sqlite3.Connection | None:
        """A write transaction for a batch of decisions, begun on the calling thread (the event loop's): the
        batch writer's connection, or None when a writer other than a decision batch holds SQLite's write lock
        now (then write through ``write`` on a thread, which waits for it). End it with ``commit_batch`` (on a
        thread: its fsync) or ``rollback_batch``.

        Decision batches of every process on the file take turns by an advisory file lock first, whose waiter
        (on a thread) wakes as soon as it is released: SQLite's own busy handler sleeps 1, 2, 5, 10… ms between
        tries, which with two server processes logging at once was most of the decisions' p99."""
        self._batch_lock.acquire()  # free unless a cancelled batch's commit is still running on its thread
        try:
            if self._batch is None or self._batch_pid != os.getpid():
                self._batch = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._batch.execute("PRAGMA busy_timeout=0")
                self._batch.execute("PRAGMA synchronous=FULL")
                self._batch_file = open(f"{self.path}-decisions.lock", "a+b")  # noqa: SIM115 - kept open
                self._batch_pid = os.getpid()
            assert self._batch_file is not None
            try:
                fcntl.flock(self._batch_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, self._batch_file, fcntl.LOCK_EX)
            try:
                self._batch.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                fcntl.flock(self._batch_file, fcntl.LOCK_UN)
                if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise Unavailable(f"the database is unavailable: {exc}") from exc
                self._batch_lock.release()
                return None
        except BaseException:
            if self._batch_lock.locked():
                self._batch_lock.release()
            raise
        return self._batch

    def commit_batch(self) -> None:
        """Commit the batch writer's transaction and let the next batch (of any process) begin."""
        assert self._batch is not None
        try:
            with _translated():
                self._batch.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (a disk I/O error) can leave the transaction open; the next batch must begin anew.
            if self._batch.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._batch.execute("ROLLBACK")
            raise
        finally:
            self._end_batch()

    def rollback_batch(self) -> None:
        try:
            if self._batch is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._batch.execute("ROLLBACK")
        finally:
            self._end_batch()

    def _end_batch(self) -> None:
        try:
            if self._batch_file is not None:
                fcntl.flock(self._batch_file, fcntl.LOCK_UN)
        finally:
            self._batch_lock.release()

    def close(self) -> None:
        """Close the connections (they reopen on next use)."""
        self._unmap()
        for conn in (self._reader, self._writer, self._batch):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._reader = self._writer = self._batch = None
        if self._batch_file is not None:
            self._batch_file.close()
            self._batch_file = None


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        # Locked past the busy timeout, disk I/O errors, a vanished file: the store is unavailable.
        raise Unavailable(f"the database is unavailable: {exc}") from exc


class SqliteHotPath:
    """Decision reads on the event loop's thread (one snapshot), decision writes in one call on a thread."""

    name = "sqlite"

    def __init__(self, db: Database, path: str) -> None:
        self.db = db
        self.direct = DirectSqlite(path)
        self._probes: dict[tuple[str, str, str | None], Probe] = {}
        """Probes read since the file last changed (any commit, by any connection, clears them)."""
        self._probes_at: tuple[int, int | bytes] | None = None

    async def decision_facts(
        self, namespace: str, promotion: str | None, stage: str | None, freight: str | None, recent: int
    ) -> DecisionFacts:
        with self.direct.read() as conn:
            p_facts = None
            if promotion is not None:
                found = conn.execute(_SQL_PROMOTION, (namespace, promotion)).fetchone()
                p_facts = _promotion(found) if found is not None else None
                stage = p_facts.stage if p_facts is not None else None
            state = _stage_state(conn, namespace, stage, recent) if stage else None
            names = freight_names(state, p_facts, freight)
            objects: dict[str, dict[str, Any]] = {}
            if names:
                marks = ", ".join("?" * len(names))
                sql = f"SELECT name, object FROM freight WHERE namespace = ? AND name IN ({marks}) AND deleted = 0"
                objects = {name: msgspec.json.decode(obj) for name, obj in conn.execute(sql, (namespace, *names))}
            versions = _versions(conn, namespace, stage) if stage else None
            policies = conn.execute("SELECT version FROM policy_set WHERE id = 1").fetchone()
        return DecisionFacts(p_facts, state, objects, versions, policies[0] if policies else 0)

    async def versions(self, namespace: str, stage: str) -> Versions:
        with self.direct.read() as conn:
            return _versions(conn, namespace, stage)

    async def probe(self, namespace: str, stage: str, promotion: str | None) -> Probe:
        # Asked again before anything was committed to the file, a probe answers as it did: the file's change mark
        # (where every process's commits show) instead of the statement.
        mark = self.direct.data_version()
        if mark != self._probes_at:
            self._probes.clear()
            self._probes_at = mark
        key = (namespace, stage, promotion)
        kept = self._probes.get(key)
        if kept is not None:
            return kept
        probe = self._read_probe(namespace, stage, promotion)
        if len(self._probes) >= _PROBES_KEPT:
            self._probes.clear()
        self._probes[key] = probe
        return probe

    def _read_probe(self, namespace: str, stage: str, promotion: str | None) -> Probe:
        found: dict[str, int] = {}
        policies, claim, last = 0, None, None
        sql, subject = (_SQL_PROBE_PROMOTION, promotion) if promotion is not None else (_SQL_PROBE_STAGE, stage)
        params = (namespace, stage_scope(stage), FREIGHT_SCOPE, namespace, stage, namespace, subject)
        rows = self.direct.fetch(sql, params)
        for part, scope, version, holder, decision_id, claimed_at, expires_at, phase in rows:
            if part == 0:
                found[scope] = version
            elif part == 1:
                policies = version
            elif part == 3:
                last = (decision_id, scope, version)
            else:
                claim = Claim(holder, decision_id, from_db_time(claimed_at), from_db_time(expires_at), phase)  # type: ignore[arg-type]
        return Probe(versions_of(stage, found), policies, claim, last)

    async def precomputed(self, namespace: str, promotion: str) -> PrecomputedVerdict | None:
        rows = self.direct.fetch(_SQL_PRECOMPUTED, (namespace, promotion))
        return verdict_of(rows[0]) if rows else None

    async def current_claim(self, namespace: str, stage: str) -> Claim | None:
        rows = self.direct.fetch(_SQL_CLAIM, (namespace, stage))
        if not rows:
            return None
        promotion, decision_id, claimed_at, expires_at, phase = rows[0]
        return Claim(promotion, decision_id, from_db_time(claimed_at), from_db_time(expires_at), phase)  # type: ignore[arg-type]

    async def record_decisions(self, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
        return await self._write_batch(lambda conn: record_all(conn, entries))

    async def add_repeats(self, repeats: list[tuple[str, int, datetime]]) -> None:
        if repeats:
            rows = [(to_db_time(at), n, row_id) for row_id, n, at in repeats]
            await self._write_batch(lambda conn: conn.executemany(_SQL_FOLD, rows))

    async def _write_batch(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` in one write transaction of the decision log. The gate queues it with this process's other
        writers. Its statements run here, on the event loop's thread, when the write lock is free at once (a few µs
        each; on a thread, every statement waited for the GIL back from the busy loop, ~0.3 ms each); only the
        commit's fsync goes to a thread. When another writer holds the lock, the whole of it waits on a thread."""
        async with self.db.write_gate:
            conn = await self.direct.begin_batch()
            if conn is None:
                return await asyncio.to_thread(self._write_waiting, work)
            try:
                with _translated():
                    result = work(conn)
            except BaseException:
                self.direct.rollback_batch()
                raise
            await asyncio.to_thread(self.direct.commit_batch)
            return result

    def _write_waiting(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        with self.direct.write() as conn:
            return work(conn)

    async def close(self) -> None:
        self.direct.close()


_P_COLS = ", ".join(PROMOTION_COLUMNS)
_SQL_PROMOTION = f"SELECT {_P_COLS} FROM promotions WHERE namespace = ? AND name = ? AND deleted = 0"
_SQL_STAGE = f"SELECT {', '.join(STAGE_COLUMNS)} FROM stages WHERE namespace = ? AND name = ? AND deleted = 0"
_OF_STAGE = "FROM promotions WHERE namespace = ? AND stage = ? AND deleted = 0"
_SQL_QUEUE = f"SELECT {_P_COLS} {_OF_STAGE} AND terminal = 0"
_SQL_RECENT = f"SELECT {_P_COLS} {_OF_STAGE} AND terminal = 1 ORDER BY queue_key DESC LIMIT ?"
_SQL_LAST = f"SELECT {_P_COLS} {_OF_STAGE} AND phase = 'Succeeded' ORDER BY queue_key DESC LIMIT 1"
_SQL_RUN = (
    f"SELECT {', '.join(RUN_COLUMNS)} FROM analysis_runs WHERE namespace = ? AND stage = ? AND freight_collection = ?"
    " AND created_at >= ? AND deleted = 0 ORDER BY created_at DESC, name DESC LIMIT 1"
)
_SQL_VERSIONS = "SELECT scope, version FROM state_versions WHERE namespace = ? AND scope IN (?, ?)"
_SQL_CLAIM = (
    "SELECT c.promotion, c.decision_id, c.claimed_at, c.expires_at, p.phase FROM stage_claims AS c"
    " LEFT OUTER JOIN promotions AS p ON p.namespace = c.namespace AND p.name = c.promotion AND p.deleted = 0"
    " WHERE c.namespace = ? AND c.stage = ?"
)
_SQL_PRECOMPUTED = (
    f"SELECT {', '.join(PRECOMPUTED_COLUMNS)} FROM precomputed_verdicts WHERE namespace = ? AND promotion = ?"
)
# One statement, one snapshot: the versions, the policy-set version and the claim of a repeated decision.
_SQL_PROBE = (
    "SELECT 0, scope, version, NULL, NULL, NULL, NULL, NULL FROM state_versions WHERE namespace = ? AND scope IN (?, ?)"
    " UNION ALL SELECT 1, NULL, version, NULL, NULL, NULL, NULL, NULL FROM policy_set WHERE id = 1"
    " UNION ALL SELECT 2, NULL, NULL, c.promotion, c.decision_id, c.claimed_at, c.expires_at, p.phase"
    " FROM stage_claims AS c LEFT OUTER JOIN promotions AS p"
    " ON p.namespace = c.namespace AND p.name = c.promotion AND p.deleted = 0 WHERE c.namespace = ? AND c.stage = ?"
    " UNION ALL SELECT * FROM (SELECT 3, fold_key, repeat_count, NULL, id, NULL, NULL, NULL FROM decisions"
)
_SQL_PROBE_PROMOTION = _SQL_PROBE + " WHERE namespace = ? AND promotion = ? ORDER BY id DESC LIMIT 1)"
_SQL_PROBE_STAGE = _SQL_PROBE + " WHERE namespace = ? AND stage = ? AND prospective = 1 ORDER BY id DESC LIMIT 1)"
_SQL_LAST_BY_PROMOTION = (
    "SELECT id, fold_key, repeat_count FROM decisions WHERE namespace = ? AND promotion = ? ORDER BY id DESC LIMIT 1"
)
_SQL_LAST_BY_STAGE = (
    "SELECT id, fold_key, repeat_count FROM decisions WHERE namespace = ? AND stage = ? AND prospective = 1"
    " ORDER BY id DESC LIMIT 1"
)
_SQL_FOLD = "UPDATE decisions SET last_at = ?, repeat_count = repeat_count + ? WHERE id = ?"
_SQL_INPUT = "INSERT INTO decision_inputs (decision_id, encoding, body) VALUES (?, ?, ?)"


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def _value(value: Any) -> Any:
    """A value as SQLAlchemy stores it on SQLite."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return to_db_time(value)
    return value


def _versions(conn: sqlite3.Connection, namespace: str, stage: str) -> Versions:
    return versions_of(stage, dict(conn.execute(_SQL_VERSIONS, (namespace, stage_scope(stage), FREIGHT_SCOPE))))


def _stage_state(conn: sqlite3.Connection, namespace: str, name: str, recent: int) -> StageState | None:
    row = conn.execute(_SQL_STAGE, (namespace, name)).fetchone()
    if row is None:
        return None
    stage_row = AttrRow(zip(STAGE_COLUMNS, row, strict=True))
    stage_row.created_at = from_db_time(stage_row.created_at)
    stage_row.recorded_at = from_db_time(stage_row.recorded_at)
    queue = [_promotion(r) for r in conn.execute(_SQL_QUEUE, (namespace, name))]
    history = [_promotion(r) for r in conn.execute(_SQL_RECENT, (namespace, name, max(recent, 0)))]
    last_row = conn.execute(_SQL_LAST, (namespace, name)).fetchone()
    last = _promotion(last_row) if last_row is not None else None
    runs: list[RunFacts] = []
    if stage_row.has_verification and last is not None and last.freight_collection and last.finished_at:
        params = (namespace, name, last.freight_collection, to_db_time(last.finished_at))
        runs = [_run(r) for r in conn.execute(_SQL_RUN, params)]
    return stage_state(stage_row, queue, history, last, runs)


def _promotion(row: tuple[Any, ...]) -> PromotionFacts:
    ns, name, stage, freight, phase, key, created, started, finished, collection, aborting = row
    return PromotionFacts(
        ns, name, stage, freight, phase, key, from_db_time(created), from_db_time(started),
        from_db_time(finished), collection, bool(aborting),
    )  # fmt: skip


def _run(row: tuple[Any, ...]) -> RunFacts:
    ns, name, stage, collection, promotion, phase, terminated, created, started, completed = row
    return RunFacts(
        ns, name, stage, collection, promotion, phase, bool(terminated), from_db_time(created),
        from_db_time(started), from_db_time(completed),
    )  # fmt: skip


def record_all(conn: sqlite3.Connection, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
    """Log a batch inside an open write transaction: an answer identical to the question's previous one folds
    into its row. The batch's folds into one row are one statement (polling makes runs of them)."""
    lasts: dict[tuple[str, str | None, str | None], list[Any] | None] = {}
    folds: dict[str, list[Any]] = {}  # row id → [answers folded in, the last one's time]
    out = []
    for entry in entries:
        subject = (entry.namespace, entry.promotion, None if entry.promotion is not None else entry.stage)
        if subject in lasts:
            last = lasts[subject]
        elif entry.promotion is not None:
            found = conn.execute(_SQL_LAST_BY_PROMOTION, (entry.namespace, entry.promotion)).fetchone()
            last = list(found) if found is not None else None
        else:
            found = conn.execute(_SQL_LAST_BY_STAGE, (entry.namespace, entry.stage)).fetchone()
            last = list(found) if found is not None else None
        if last is not None and last[1] == entry.fold_key:
            last[2] += 1
            fold = folds.setdefault(last[0], [0, entry.evaluated_at])
            fold[0] += 1
            fold[1] = max(fold[1], entry.evaluated_at)
            lasts[subject] = last
            out.append((last[0], last[2]))
            continue
        row = decision_row(entry)
        conn.execute(_insert("decisions", tuple(row)), tuple(map(_value, row.values())))
        conn.execute(_SQL_INPUT, (entry.id, *(entry.stored_input or encode_input(entry.input))))
        reasons = reason_rows(entry)
        if reasons:
            conn.executemany(_insert("decision_reasons", tuple(reasons[0])), [tuple(r.values()) for r in reasons])
        lasts[subject] = [entry.id, entry.fold_key, 1]
        out.append((entry.id, 1))
    for row_id, (count, at) in folds.items():
        conn.execute(_SQL_FOLD, (to_db_time(at), count, row_id))
    return out
