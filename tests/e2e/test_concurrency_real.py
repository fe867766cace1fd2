"""Real concurrency against a server process (the in-process test client answers one request at a time)."""

from __future__ import annotations

import asyncio
import copy

import httpx

from tests.conftest import ADMIN, load


def _promotions(fixtures_dir, count: int, phase: str = "Pending") -> list[dict]:
    template = load(fixtures_dir / "snapshot" / "promotions" / "test.01kztk6eebef8qhrq8vspkkmcg.0ccf689.json")
    out = []
    for i in range(count):
        p = copy.deepcopy(template)
        p["metadata"]["name"] = f"test.01kzv{i:021d}.0ccf689"
        p["metadata"]["resourceVersion"] = str(200000 + i)
        p["status"] = {"phase": phase}
        out.append(p)
    return out


def test_fifty_concurrent_ingestions_and_claims_on_one_server(store_env, server_factory, fixtures_dir):
    env = {**store_env, "POLICY_SERVER_ENGINE_WORKERS": "1", "POLICY_SERVER_RATE_LIMIT_PER_S": "0"}
    server = server_factory(env)
    promotions = _promotions(fixtures_dir, 50)

    async def scenario() -> tuple[list[httpx.Response], list[dict]]:
        async with httpx.AsyncClient(base_url=server.url, headers=ADMIN, timeout=60) as client:
            await client.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes())
            ingested = await asyncio.gather(*(client.post("/v1/state", json=p) for p in promotions))
            # Without FIFO admission all fifty may start by policy: only the claim can pick one.
            await client.delete("/v1/policies/admission")
            claims = await asyncio.gather(
                *(
                    client.post(
                        "/v1/decisions",
                        json={"promotion": {"namespace": "kargo-demo", "name": p["metadata"]["name"]}, "claim": True},
                    )
                    for p in promotions
                )
            )
            return ingested, [c.json() for c in claims]

    ingested, claims = asyncio.run(scenario())
    assert [r.status_code for r in ingested] == [200] * 50
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        for p in promotions:
            assert http.get(f"/v1/state/promotions/kargo-demo/{p['metadata']['name']}").status_code == 200
    assert len([c for c in claims if c["allow"]]) == 1
    assert all({r["code"] for r in c["reasons"]} == {"stage_claimed"} for c in claims if not c["allow"])
