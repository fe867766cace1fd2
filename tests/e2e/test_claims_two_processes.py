"""Start claims are atomic across server processes sharing one PostgreSQL."""

from __future__ import annotations

import asyncio
import copy

import httpx
import pytest

from tests.conftest import ADMIN, load
from tests.e2e.conftest import cli


@pytest.mark.postgres
def test_fifty_claims_across_two_servers_give_exactly_one_allow(fresh_postgres_url, server_factory, fixtures_dir):
    url = fresh_postgres_url
    env = {"POLICY_SERVER_DATABASE_URL": url, "POLICY_SERVER_ENGINE_WORKERS": "1"}
    assert cli("db", "upgrade", env=env).returncode == 0
    first = server_factory(env)
    second = server_factory(env)

    template = load(fixtures_dir / "snapshot" / "promotions" / "test.01kztk6eebef8qhrq8vspkkmcg.0ccf689.json")
    promotions = []
    for i in range(50):
        p = copy.deepcopy(template)
        p["metadata"]["name"] = f"test.01kzv{i:021d}.0ccf689"
        p["metadata"]["resourceVersion"] = str(200000 + i)
        p["status"] = {"phase": "Pending"}
        promotions.append(p)
    with httpx.Client(base_url=first.url, timeout=60, headers=ADMIN) as http:
        http.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes()).raise_for_status()
        http.post("/v1/state", json={"apiVersion": "v1", "kind": "List", "items": promotions}).raise_for_status()
        # Without FIFO admission all fifty are allowed by the policies: only the claim picks one.
        http.delete("/v1/policies/admission").raise_for_status()

    async def ask(base: str, name: str) -> dict:
        async with httpx.AsyncClient(base_url=base, timeout=60, headers=ADMIN) as client:
            response = await client.post(
                "/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": name}, "claim": True}
            )
            response.raise_for_status()
            return response.json()

    async def all_at_once() -> list[dict]:
        # The second replica sees the disabled policy within its refresh bound (1 s by default).
        await asyncio.sleep(1.5)
        servers = [first.url, second.url]
        return await asyncio.gather(*(ask(servers[i % 2], p["metadata"]["name"]) for i, p in enumerate(promotions)))

    answers = asyncio.run(all_at_once())
    allowed = [a for a in answers if a["allow"]]
    assert len(allowed) == 1, [a["reasons"] for a in answers if a["allow"]]
    assert all({r["code"] for r in a["reasons"]} == {"stage_claimed"} for a in answers if not a["allow"])
