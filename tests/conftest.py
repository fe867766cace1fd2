"""Shared test fixtures: the Kargo fixtures folder, and stores on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from policy_server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL_ENV = "POLICY_SERVER_TEST_POSTGRES_URL"


def kargo_fixtures_dir() -> Path:
    """``shared/fixtures/kargo`` beside the checkout (or POLICY_SERVER_TEST_FIXTURES)."""
    override = os.environ.get("POLICY_SERVER_TEST_FIXTURES")
    candidates = [Path(override)] if override else []
    candidates += [ROOT.parent / "shared" / "fixtures" / "kargo", ROOT / "shared" / "fixtures" / "kargo"]
    for candidate in candidates:
        if (candidate / "list-kargo-demo.json").is_file():
            return candidate
    raise RuntimeError(f"Kargo fixtures not found in {', '.join(map(str, candidates))}")


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return kargo_fixtures_dir()


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def require_postgres() -> str:
    """The test PostgreSQL URL; without a reachable server a test skips locally and fails in CI."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        message = f"{POSTGRES_URL_ENV} is not set: no PostgreSQL to test against"
        if IN_CI:
            pytest.fail(message + " (CI must provide it)")
        pytest.skip(message)
    try:
        asyncio.run(_admin(url, "SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means the same thing here
        message = f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return url


async def _admin(server_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(server_url)
    conn = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port or 5432, database=url.database
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    return require_postgres()


def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"ps_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    yield from fresh_postgres_database(require_postgres())


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=str(tmp_path), auto_migrate=True, engine_workers=1)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Any]:
    """An HTTP client talking to the app (in process) over a migrated, empty store."""
    from litestar.testing import AsyncTestClient

    from policy_server.app import create_app

    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server (fails in CI, skips locally without one)."""
    yield from fresh_postgres_database(require_postgres())
