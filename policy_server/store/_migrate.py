"""Schema migrations with Alembic: upgrade to head, and read the current and head revisions."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from policy_server.store._db import Database


def migrations_dir() -> Path:
    """The ``migrations/`` folder: ``POLICY_SERVER_MIGRATIONS_DIR`` or the one beside the package."""
    override = os.environ.get("POLICY_SERVER_MIGRATIONS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration that needs no ``alembic.ini``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(db: Database) -> str | None:
    """The revision the database is at (None: never migrated)."""
    async with db.read() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())


async def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade the schema in one transaction (on SQLite, under the write lock)."""

    def _run(sync: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync
        command.upgrade(cfg, revision)

    async with db.write() as conn:
        await conn.run_sync(_run)
