"""policy-server evaluating on a real OPA server: the decision scenarios, restarts, and foreign policy sets."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from litestar.testing import AsyncTestClient

from policy_server.app import create_app
from tests.integration import test_decisions
from tests.integration.conftest import PROD_P6, post


@pytest.fixture
async def opa_client(settings, opa):
    opa_settings = replace(settings, engine="opa", opa_url=opa.url)
    async with AsyncTestClient(create_app(opa_settings)) as client:
        yield client


async def test_the_worked_scenario_passes_unchanged_on_opa(opa_client, fixtures_dir):
    await test_decisions.test_the_worked_scenario_of_the_fixtures(opa_client, fixtures_dir)


async def test_the_decision_log_scenario_passes_unchanged_on_opa(opa_client, fixtures_dir):
    await test_decisions.test_log_filters_pagination_and_export(opa_client, fixtures_dir)


async def test_claims_pass_unchanged_on_opa(opa_client, fixtures_dir):
    await test_decisions.test_fifty_concurrent_claims_give_exactly_one_allow(opa_client, fixtures_dir)


@pytest.fixture
async def uncached_opa_client(settings, opa):
    # Without the verdict cache, every decision during the outage really asks OPA.
    opa_settings = replace(settings, engine="opa", opa_url=opa.url, decision_cache_ms=0)
    async with AsyncTestClient(create_app(opa_settings)) as client:
        yield client


async def test_opa_killed_and_restarted_fails_closed_then_recovers(uncached_opa_client, opa, fixtures_dir):
    opa_client = uncached_opa_client
    await post(opa_client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    uat_head = "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"
    before = await test_decisions.decide(opa_client, uat_head)
    assert before["allow"] is True
    ready = (await opa_client.get("/ready")).json()
    assert ready["ready"] is True and any("OPA at" in c["detail"] for c in ready["checks"])

    opa.kill()
    down = await test_decisions.decide(opa_client, uat_head)
    assert down["allow"] is False
    assert {r["code"] for r in down["reasons"]} == {"engine_unavailable"}
    not_ready = await opa_client.get("/ready")
    assert not_ready.status_code == 503

    # OPA comes back empty: policy-server pushes its policies again by itself.
    opa.start()
    after = await test_decisions.decide(opa_client, uat_head)
    assert after["allow"] is True, after["reasons"]
    assert (await opa_client.get("/ready")).status_code == 200
    p6 = await test_decisions.decide(opa_client, PROD_P6)
    assert {r["code"] for r in p6["reasons"]} == {"verification_in_progress"}


async def test_an_opa_holding_other_policies_is_corrected_before_it_answers(uncached_opa_client, opa, fixtures_dir):
    opa_client = uncached_opa_client
    await post(opa_client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    first = await test_decisions.decide(opa_client, PROD_P6)
    assert {r["code"] for r in first["reasons"]} == {"verification_in_progress"}
    # Someone replaces a policy module on the OPA server behind policy-server's back.
    with httpx.Client(base_url=opa.url) as http:
        modules = [p["id"] for p in http.get("/v1/policies").json()["result"]]
        target = next(m for m in modules if m.endswith("block-while-verifying/policy.rego"))
        forged = "package policies.block_while_verifying\n\nimport rego.v1\n\ndeny := set()\n"
        assert http.put(f"/v1/policies/{target}", content=forged).status_code == 200
        wrapper = next(
            m
            for m in modules
            if "entry" in m and http.get(f"/v1/policies/{m}").json()["result"]["raw"].find("block_while_verifying") > 0
        )
        raw = http.get(f"/v1/policies/{wrapper}").json()["result"]["raw"]
        assert (
            http.put(f"/v1/policies/{wrapper}", content=raw.replace('"bundle": "', '"bundle": "forged-')).status_code
            == 200
        )
    # The answer from the forged set carries the wrong bundle key: policy-server pushes its own set again.
    again = await test_decisions.decide(opa_client, PROD_P6)
    assert {r["code"] for r in again["reasons"]} == {"verification_in_progress"}
    with httpx.Client(base_url=opa.url) as http:
        assert "forged" not in http.get(f"/v1/policies/{wrapper}").json()["result"]["raw"]
        assert "deny := set()" not in http.get(f"/v1/policies/{target}").json()["result"]["raw"]
