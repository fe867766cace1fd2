"""Shared test fixtures: the Kargo fixtures folder, and stores on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from policy_server.settings import Settings
from tests.support.services import missing, summarize

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL_ENV = "POLICY_SERVER_TEST_POSTGRES_URL"
# The admin token every test app starts with (POLICY_SERVER_BOOTSTRAP_TOKEN).
ADMIN_TOKEN = "pst_test-admin-token"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def kargo_fixtures_dir() -> Path:
    """The demo project's Kargo objects, kept in the repository (``examples/kargo-demo``)."""
    return ROOT / "examples" / "kargo-demo"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return kargo_fixtures_dir()


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def require_postgres() -> str:
    """The test PostgreSQL URL; without a reachable server a test skips locally and fails in CI."""
    how = f"`eval $(sudo .ci/postgres.sh)` installs and starts one and sets {POSTGRES_URL_ENV}"
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        missing("PostgreSQL", f"{POSTGRES_URL_ENV} is not set", how)
    try:
        asyncio.run(_admin(url, "SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means the same thing here
        missing("PostgreSQL", f"{make_url(url).render_as_string()} is unreachable: {exc}", how)
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
        _drop_database(server_url, name)


def _drop_database(server_url: str, name: str) -> None:
    # An autovacuum worker may still be in the database; FORCE terminates it only if the test role is
    # in pg_signal_backend (.ci/postgres.sh grants it). Without that grant, it leaves within seconds.
    for attempt in range(20):
        try:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except Exception:
            if attempt == 19:
                raise
            time.sleep(0.5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    yield from fresh_postgres_database(require_postgres())


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=str(tmp_path),
        auto_migrate=True,
        engine_workers=1,
        bootstrap_token=ADMIN_TOKEN,
    )


@contextlib.asynccontextmanager
async def app_client(settings: Settings, token: str | None = ADMIN_TOKEN) -> AsyncIterator[Any]:
    """An HTTP client talking to an app (in process), with a bearer token (the admin's by default)."""
    from litestar.testing import AsyncTestClient

    from policy_server.app import create_app

    async with AsyncTestClient(create_app(settings)) as test_client:
        if token:
            test_client.headers["authorization"] = f"Bearer {token}"
        yield test_client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Any]:
    """An admin's HTTP client talking to the app (in process) over a migrated, empty store."""
    async with app_client(settings) as test_client:
        yield test_client


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server (fails in CI, skips locally without one)."""
    yield from fresh_postgres_database(require_postgres())


def opa_binary() -> str:
    """A real OPA: POLICY_SERVER_TEST_OPA, `opa` on PATH, or ~/go/bin/opa; skips locally and fails in CI without."""
    import shutil

    candidates = [
        os.environ.get("POLICY_SERVER_TEST_OPA"),
        shutil.which("opa"),
        str(Path.home() / "go" / "bin" / "opa"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    missing(
        "OPA",
        "no opa binary (POLICY_SERVER_TEST_OPA, PATH, ~/go/bin)",
        "go install github.com/open-policy-agent/opa@v1.22.3",
    )


class OpaProcess:
    """A real `opa run --server` on a loopback port; it can be killed and started again on the same port."""

    def __init__(self, binary: str, log: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.binary = binary
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> None:
        import subprocess
        import time

        import httpx

        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [self.binary, "run", "--server", "--addr", f"127.0.0.1:{self.port}", "--log-level", "error"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"OPA did not start: {self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def opa(tmp_path: Path) -> Iterator[OpaProcess]:
    """A fresh real OPA server for one test."""
    server = OpaProcess(opa_binary(), tmp_path / "opa.log")
    server.start()
    yield server
    server.kill()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per missing service (PostgreSQL, OPA, Chromium…) with the tests it skipped and how to get it."""
    lines = summarize(terminalreporter.stats.get("skipped", []))
    if lines:
        terminalreporter.section("skipped")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real kube-apiserver with etcd and the Kargo and Argo Rollouts CRDs, for the whole session (each test
    works in a project namespace of its own: ``kube.project()``)."""
    from tests.support.kube import KubeCluster

    cluster = KubeCluster(tmp_path_factory.mktemp("kube"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
