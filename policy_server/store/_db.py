"""Database engines: SQLite (embedded) and PostgreSQL (production), with errors translated at the edge."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Executable, Row, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from policy_server.errors import Unavailable
from policy_server.store._hot import HotPath, choose_hot_path
from policy_server.store._hot._sqlite import SQLITE_BUSY_TIMEOUT_MS


class Database:
    """Engines for one store. On SQLite, writes take the write lock up front (``BEGIN IMMEDIATE``).

    SQLite allows one writer at a time; a read-then-write transaction that began deferred cannot upgrade
    when another connection committed meanwhile, so every write transaction asks for the lock first and
    waits for it (busy timeout). Reads use a separate engine and see one consistent snapshot (WAL).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 20,
        max_overflow: int = 10,
        echo: bool = False,
        fast_path: bool = True,
    ) -> None:
        self.url = url
        self.pool_size = pool_size + max_overflow
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.sqlite_file: str | None = None
        """The SQLite file (not for in-memory or URI databases)."""
        self._write_gate: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self.walks_reason_index = self.dialect == "sqlite"
        """Filter the decision log by policy or code by walking the reason index newest first (SQLite's planner
        would otherwise collect every matching id first; PostgreSQL plans ``id IN (…)`` well)."""
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
                self.sqlite_file = database
            self.writer = self._sqlite_engine(url, "BEGIN IMMEDIATE", echo)
            self.reader = self._sqlite_engine(url, "BEGIN", echo)
        elif self.dialect == "postgresql":
            self.writer = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_pre_ping=True,
                pool_recycle=1800,
                echo=echo,
            )
            self.reader = self.writer
            # Single statements need no transaction: BEGIN and ROLLBACK would double their round trips.
            self._fetcher = self.writer.execution_options(isolation_level="AUTOCOMMIT")
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite+aiosqlite or postgresql+asyncpg")
        self.hot: HotPath = choose_hot_path(self, fast_path)
        """The decision hot path, chosen once: this database's own implementation unless ``fast_path`` is off."""

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is SQLite."""
        return self.dialect == "sqlite"

    @staticmethod
    def _sqlite_engine(url: str, begin: str, echo: bool) -> AsyncEngine:
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not the driver, emit BEGIN, so that we choose its kind.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection):  # type: ignore[no-untyped-def]
            connection.exec_driver_sql(begin)

        return engine

    @property
    def write_gate(self) -> asyncio.Lock:
        """Taken around every write transaction of this process on SQLite, so that its writers queue here
        instead of polling SQLite's lock (other processes still wait through the busy timeout)."""
        loop = asyncio.get_running_loop()
        if self._write_gate is None or self._write_gate[0] is not loop:
            self._write_gate = (loop, asyncio.Lock())
        return self._write_gate[1]

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back on error."""
        gate = self.write_gate if self.is_sqlite else contextlib.AsyncExitStack()
        async with gate:
            with translate_errors():
                async with self.writer.begin() as conn:
                    yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction over one consistent snapshot."""
        with translate_errors():
            async with self.reader.connect() as conn:
                if self.dialect == "postgresql":
                    await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                else:
                    await conn.begin()
                try:
                    yield conn
                finally:
                    await conn.rollback()

    async def fetch(self, statement: Executable, parameters: dict[str, Any] | None = None) -> list[Row[Any]]:
        """The rows of one statement: a single statement reads one snapshot, so no transaction is set up."""
        with translate_errors():
            async with (self._fetcher if self.dialect == "postgresql" else self.reader).connect() as conn:
                return list((await conn.execute(statement, parameters)).all())

    @contextlib.asynccontextmanager
    async def autocommit_connection(self) -> AsyncIterator[AsyncConnection]:
        """A pooled PostgreSQL connection outside any transaction (single statements, the hot path)."""
        with translate_errors():
            async with self._fetcher.connect() as conn:
                yield conn

    async def lock(self, conn: AsyncConnection, names: list[str]) -> None:
        """Hold named locks until the transaction ends (PostgreSQL advisory locks, taken in one order).

        SQLite needs none: ``BEGIN IMMEDIATE`` already serialises writers.
        """
        if self.is_sqlite or not names:
            return
        await conn.execute(
            text(
                "SELECT pg_advisory_xact_lock(h) FROM "
                "(SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(CAST(:keys AS text[])) AS k) AS s "
                "ORDER BY h"
            ),
            {"keys": sorted(set(names))},
        )

    async def ping(self) -> None:
        """Raise Unavailable unless the database answers."""
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.hot.close()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn a lost or refused database connection into Unavailable (503); other errors pass through."""
    try:
        yield
    except (OperationalError, PoolTimeout, OSError, ConnectionError) as exc:
        raise Unavailable(f"the database is unavailable: {_short(exc)}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated or connection_trouble(exc):
            raise Unavailable(f"the database connection was lost: {_short(exc)}") from exc
        raise


# SQLSTATE classes that mean "the server is not there right now": connection exception (08), operator
# intervention such as a shutdown or a server still starting (57), insufficient resources (53).
_UNAVAILABLE_SQLSTATE = ("08", "57", "53")


def connection_trouble(exc: BaseException) -> bool:
    """Whether ``exc`` (a SQLAlchemy error, or a driver's own) means the server is not there right now."""
    causes: list[BaseException] = []
    current: BaseException | None = getattr(exc, "orig", None) or exc
    while current is not None and len(causes) < 5:
        causes.append(current)
        current = current.__cause__
    for cause in causes:
        state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(state, str) and state[:2] in _UNAVAILABLE_SQLSTATE:
            return True
        if isinstance(cause, (ConnectionError, OSError)) or "ConnectionDoesNotExist" in type(cause).__name__:
            return True
        if type(cause).__name__ in ("InterfaceError", "InternalClientError", "CannotConnectNowError"):
            return True
    return False


def _short(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text_[0][:200] if text_ else type(exc).__name__
