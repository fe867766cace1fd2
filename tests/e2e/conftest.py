"""A real ``policy-server run`` process on a free loopback port."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, fresh_postgres_database, require_postgres

BIN = Path(sys.executable).parent / "policy-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "POLICY_SERVER_TOKEN": ADMIN_TOKEN, **(env or {})}
    return subprocess.run([str(BIN), *args], env=environment, input=stdin, capture_output=True, timeout=120)


class Server:
    """A server process and its address."""

    def __init__(self, env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.args = args
        self.port = free_port()
        self.tls = env.get("POLICY_SERVER_TLS_CERT_FILE")
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.env = {
            # The tests' own POLICY_SERVER_TEST_* variables are not settings: a server would warn about each.
            **{k: v for k, v in os.environ.items() if not k.startswith("POLICY_SERVER_TEST_")},
            "POLICY_SERVER_BOOTSTRAP_TOKEN": ADMIN_TOKEN,
            **env,
            "POLICY_SERVER_PORT": str(self.port),
        }
        self.log = log
        self.process: subprocess.Popen | None = None

    def _verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.tls) if self.tls else True

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN), "run", *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1, verify=self._verify()).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in 30 s: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def make(env: dict[str, str], *args: str) -> Server:
        server = Server(env, tmp_path / f"server-{len(servers)}.log", args)
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_env(request, tmp_path):
    """Server settings for an empty store: a SQLite data directory, or a fresh migrated PostgreSQL database."""
    if request.param == "sqlite":
        yield {"POLICY_SERVER_DATA_DIR": str(tmp_path / "data")}
        return
    for url in fresh_postgres_database(require_postgres()):
        env = {"POLICY_SERVER_DATABASE_URL": url}
        assert cli("db", "upgrade", env=env).returncode == 0
        yield env
