"""Configured limits: each breach is a 413 or 422 problem that names the limit, and changes nothing."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from tests.conftest import app_client, load
from tests.integration.conftest import NDJSON, post, stored_rows

P6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"


def _promotion(fixtures_dir, i: int = 0) -> dict:
    obj = load(fixtures_dir / "snapshot" / "promotions" / f"{P6}.json")
    obj["metadata"]["name"] = f"prod.01kztrdxmgg3c76w16pjvk{i:03d}.759376c"[:39]
    return obj


async def test_each_limit_is_named_in_its_problem_and_nothing_is_stored(settings, fixtures_dir, database_url):
    tight = replace(
        settings,
        max_ndjson_lines=3,
        max_list_items=3,
        max_json_depth=12,
        max_string_bytes=2000,
        max_policy_bytes=300,
        max_input_bytes=2000,
        max_body_bytes=200_000,
    )
    async with app_client(tight) as client:
        cases = []
        lines = "\n".join(json.dumps({"type": "ADDED", "object": _promotion(fixtures_dir, i)}) for i in range(4))
        cases.append(("max_ndjson_lines", 413, await post(client, lines, NDJSON)))
        listed = {"apiVersion": "v1", "kind": "List", "items": [_promotion(fixtures_dir, i) for i in range(4)]}
        cases.append(("max_list_items", 413, await post(client, listed)))
        deep = _promotion(fixtures_dir)
        nested: dict = {}
        deep["status"]["deep"] = nested
        for _ in range(20):
            nested["x"] = {}
            nested = nested["x"]
        cases.append(("max_json_depth", 422, await post(client, deep)))
        long = _promotion(fixtures_dir)
        long["metadata"]["annotations"]["note"] = "x" * 3000
        cases.append(("max_string_bytes", 422, await post(client, long)))
        cases.append(("max_body_bytes", 413, await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())))
        big_policy = {
            "source": "package policies.big\n\nimport rego.v1\n\n" + "# padding\n" * 50 + "deny contains 1 if false\n"
        }
        cases.append(("max_policy_bytes", 413, await client.put("/v1/policies/big", json=big_policy)))
        big_input = {"input": {"namespace": "kargo-demo", "padding": ["y" * 100] * 30}, "policy": "admission"}
        cases.append(("max_input_bytes", 413, await client.post("/v1/evaluate", json=big_input)))
        for limit, status, response in cases:
            assert response.status_code == status, (limit, response.text)
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert problem["limit"] == limit, (limit, problem)
            assert limit in problem["detail"] or limit in json.dumps(problem.get("errors", [])), problem
        assert (await client.get("/v1/policies/big")).status_code == 404
    assert all(rows == [] for rows in (await stored_rows(database_url)).values())


async def test_a_decision_input_over_the_limit_is_denied_not_evaluated(settings, fixtures_dir):
    async with app_client(replace(settings, max_input_bytes=1500)) as client:
        await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
        decision = (
            await client.post("/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": P6}})
        ).json()
        assert decision["allow"] is False
        assert [r["code"] for r in decision["reasons"]] == ["decision_input_too_large"]


async def test_decisions_and_ingestion_are_rate_limited_per_token(settings, fixtures_dir):
    # 1/s: the three requests below must not span a refill (the first decision compiles the policies, and a
    # loaded CI machine on PostgreSQL took over the half second a rate of 2/s left).
    async with app_client(replace(settings, rate_limit_per_s=1, rate_limit_burst=3)) as client:
        await post(client, (fixtures_dir / "snapshot" / "stages" / "prod.json").read_bytes())
        body = {"promotion": {"namespace": "kargo-demo", "name": P6}}
        answers = [await client.post("/v1/decisions", json=body) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 429, 429]
        limited = answers[-1]
        assert int(limited.headers["retry-after"]) >= 1 and limited.json()["code"] == "rate_limited"
        # Reads are not limited, and another token has its own budget.
        assert (await client.get("/v1/policies")).status_code == 200
        other = (await client.post("/v1/tokens", json={"name": "other", "role": "controller"})).json()["token"]
        response = await client.post("/v1/decisions", json=body, headers={"authorization": f"Bearer {other}"})
        assert response.status_code == 200
        await asyncio.sleep(1.1)
        assert (await client.post("/v1/decisions", json=body)).status_code == 200
