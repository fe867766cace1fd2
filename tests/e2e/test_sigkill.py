"""SIGKILL in the middle of ingestion and decision load loses no acknowledged write; the server restarts and serves."""

from __future__ import annotations

import asyncio
import copy
import signal
import time

import httpx

from tests.conftest import ADMIN, load


def test_sigkill_under_load_loses_nothing_acknowledged(store_env, server_factory, fixtures_dir):
    env = {**store_env, "POLICY_SERVER_ENGINE_WORKERS": "1", "POLICY_SERVER_RATE_LIMIT_PER_S": "0"}
    server = server_factory(env)
    template = load(fixtures_dir / "snapshot" / "promotions" / "test.01kztk6eebef8qhrq8vspkkmcg.0ccf689.json")
    httpx.post(f"{server.url}/v1/state", headers=ADMIN, content=(fixtures_dir / "list-kargo-demo.json").read_bytes())
    objects: list[str] = []
    decisions: list[str] = []
    deadline = time.monotonic() + 4

    async def ingest(client: httpx.AsyncClient, worker: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            p = copy.deepcopy(template)
            p["metadata"]["name"] = name = f"test.01kzx{worker:02d}{i:019d}.0ccf689"
            p["metadata"]["resourceVersion"] = str(700000 + worker * 100000 + i)
            i += 1
            try:
                response = await client.post("/v1/state", json=p)
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 200:
                objects.append(name)

    async def decide(client: httpx.AsyncClient) -> None:
        i = 0
        while time.monotonic() < deadline:
            name = f"test.01kzx01{i:019d}.0ccf689"
            i += 1
            try:
                response = await client.post(
                    "/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": name}}
                )
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                decisions.append(response.json()["id"])

    async def kill() -> None:
        await asyncio.sleep(2)
        server.process.send_signal(signal.SIGKILL)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN, timeout=10) as client:
            await asyncio.gather(ingest(client, 1), ingest(client, 2), decide(client), kill())

    asyncio.run(run())
    server.process.wait(10)
    assert len(objects) > 10 and len(decisions) > 5

    restarted = server_factory(env)
    with httpx.Client(base_url=restarted.url, headers=ADMIN, timeout=30) as http:
        missing = [n for n in objects if http.get(f"/v1/state/promotions/kargo-demo/{n}").status_code != 200]
        assert missing == []
        lost = [d for d in set(decisions) if http.get(f"/v1/decisions/{d}").status_code != 200]
        assert lost == []
        answer = http.post("/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": objects[0]}})
        assert answer.status_code == 200
