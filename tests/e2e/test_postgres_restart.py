"""PostgreSQL restarts under load: 503s during the outage, recovery without a restart, nothing acknowledged lost."""

from __future__ import annotations

import asyncio
import copy
import os
import subprocess
import time

import httpx
import pytest

from tests.conftest import ADMIN, load
from tests.e2e.conftest import cli
from tests.support.services import missing


def _commands() -> tuple[str, str]:
    stop, start = (
        os.environ.get("POLICY_SERVER_TEST_POSTGRES_STOP"),
        os.environ.get("POLICY_SERVER_TEST_POSTGRES_START"),
    )
    if not (stop and start):
        missing(
            "PostgreSQL restarts",
            "POLICY_SERVER_TEST_POSTGRES_STOP/START are not set",
            "the commands that stop and start the test server, e.g. pg_ctlcluster 15 main stop|start",
        )
    return stop, start


@pytest.mark.postgres
def test_postgres_restart_during_load_loses_nothing_acknowledged(fresh_postgres_url, server_factory, fixtures_dir):
    stop, start = _commands()
    env = {"POLICY_SERVER_DATABASE_URL": fresh_postgres_url, "POLICY_SERVER_ENGINE_WORKERS": "1"}
    assert cli("db", "upgrade", env=env).returncode == 0
    server = server_factory(env)
    template = load(fixtures_dir / "snapshot" / "promotions" / "test.01kztk6eebef8qhrq8vspkkmcg.0ccf689.json")
    httpx.post(
        f"{server.url}/v1/state",
        headers=ADMIN,
        content=(fixtures_dir / "list-kargo-demo.json").read_bytes(),
        timeout=30,
    )

    acknowledged_objects: list[str] = []
    acknowledged_decisions: list[str] = []
    refused: list[tuple[int, str]] = []
    stop_at = time.monotonic() + 12

    async def ingest_loop(client: httpx.AsyncClient, worker: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            p = copy.deepcopy(template)
            name = f"test.01kzw{worker:02d}{i:019d}.0ccf689"
            p["metadata"]["name"] = name
            p["metadata"]["resourceVersion"] = str(500000 + worker * 100000 + i)
            p["status"] = {"phase": "Pending"}
            i += 1
            try:
                response = await client.post("/v1/state", json=p)
            except httpx.HTTPError as exc:
                refused.append((0, repr(exc)))
                continue
            if response.status_code == 200:
                acknowledged_objects.append(name)
            else:
                refused.append((response.status_code, response.headers.get("content-type", "")))
            await asyncio.sleep(0.02)

    async def decision_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            try:
                response = await client.post(
                    "/v1/decisions",
                    json={"promotion": {"namespace": "kargo-demo", "name": "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"}},
                )
            except httpx.HTTPError as exc:
                refused.append((0, repr(exc)))
                continue
            if response.status_code == 200:
                acknowledged_decisions.append(response.json()["id"])
            else:
                refused.append((response.status_code, response.headers.get("content-type", "")))
            await asyncio.sleep(0.02)

    async def outage() -> None:
        await asyncio.sleep(2)
        await asyncio.to_thread(subprocess.run, stop, shell=True, check=True)
        await asyncio.sleep(3)
        await asyncio.to_thread(subprocess.run, start, shell=True, check=True)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=ADMIN) as client:
            await asyncio.gather(ingest_loop(client, 1), ingest_loop(client, 2), decision_loop(client), outage())

    asyncio.run(run())

    assert refused, "the outage should have refused some requests"
    assert {status for status, _ in refused} <= {503}, refused[:5]
    assert all(kind.startswith("application/problem+json") for _, kind in refused)
    # Recovered without a restart, and everything acknowledged is there.
    with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as http:
        deadline = time.monotonic() + 20
        while http.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert http.get("/ready").status_code == 200
        missing = [
            n for n in acknowledged_objects if http.get(f"/v1/state/promotions/kargo-demo/{n}").status_code != 200
        ]
        assert missing == []
        lost = [d for d in set(acknowledged_decisions) if http.get(f"/v1/decisions/{d}").status_code != 200]
        assert lost == []
    assert len(acknowledged_objects) > 20 and len(acknowledged_decisions) > 10
