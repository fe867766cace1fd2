"""policy-server evaluating on a real OPA server: the decision scenarios, restarts, and foreign policy sets."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from tests.conftest import app_client
from tests.integration import test_decisions
from tests.integration.conftest import PROD_P6, post


@pytest.fixture
async def opa_client(settings, opa):
    opa_settings = replace(settings, engine="opa", opa_url=opa.url)
    async with app_client(opa_settings) as client:
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
    async with app_client(opa_settings) as client:
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


@pytest.fixture
async def opa_cli_client(settings):
    from tests.conftest import opa_binary

    async with app_client(replace(settings, opa_binary=opa_binary())) as client:
        yield client


async def test_authors_see_opas_verdict_next_to_regopys(opa_cli_client):
    client = opa_cli_client
    run = (await client.post("/v1/policies/admission/test")).json()
    assert run["passed"] is True and run["opa"]["passed"] is True
    assert run["opa"]["total"] == run["total"] >= 5
    assert {r["name"] for r in run["opa"]["results"]} == {r["name"] for r in run["results"]}

    # A string made by a comprehension, formatted with %s: OPA prints it plainly, regopy with quotes.
    source = """package policies.quoted

import rego.v1

deny contains d if some d in denials(input)

denials(inp) := {{"code": "x", "message": sprintf("first is %s", [names[0]])}} if {
	names := [n | some n in inp.queue]
	count(names) > 0
} else := set()
"""
    tests = """package policies.quoted_test

import rego.v1

import data.policies.quoted

_mk(name) := {"name": name}

_doc(promotions) := {"queue": [p.name | some p in promotions]}

test_message_names_the_first if {
	some d in quoted.denials(_doc([_mk("prod.a")]))
	d.message == "first is prod.a"
}
"""
    response = await client.put("/v1/policies/quoted", json={"source": source, "tests": {"policy_test.rego": tests}})
    assert response.status_code == 422
    failing = [e for e in response.json()["errors"] if e["code"].startswith("test_")]
    # regopy fails the test (dialect rule 6 in policies/README.md); OPA passes it, so no "(opa)" failure.
    assert [e["message"].split(":")[0] for e in failing] == ["test_message_names_the_first"]

    broken = await client.put(
        "/v1/policies/broken", json={"source": "package policies.broken\n\nallow if {\n  input.a ==\n}\n"}
    )
    codes = {(e["code"], e.get("line")) for e in broken.json()["errors"]}
    assert ("opa_rego_parse_error", 5) in codes or ("opa_rego_parse_error", 4) in codes


async def test_one_request_answers_every_policy_and_a_failing_policy_still_fails_alone(opa):
    from policy_server.engine import Bundle, OpaEvaluator, PolicyCode

    def policy(policy_id: str, body: str) -> PolicyCode:
        return PolicyCode(policy_id, f"package policies.{policy_id}\n\nimport rego.v1\n\n{body}\n")

    sees = policy("sees", 'deny contains {"code": "seen", "message": json.marshal(input)} if input.p > 0')
    limit = policy("limit", 'deny contains {"code": "over", "message": "p"} if input.p > input.parameters.max')
    evaluator = OpaEvaluator([opa.url])
    await evaluator.start()
    asked: list[str] = []
    server = evaluator.servers[0]
    query = server.query

    async def counting(entrypoint, document):
        asked.append(entrypoint)
        return await query(entrypoint, document)

    server.query = counting
    try:
        bundle = Bundle.of([sees, limit])
        document = {"p": 2}
        outcomes = await evaluator.evaluate(
            bundle, [("sees", {**document, "parameters": {}}), ("limit", {**document, "parameters": {"max": 1}})]
        )
        assert asked == ["policy_server/entry/combined/result"]
        by_id = {o.policy_id: o for o in outcomes}
        # Each policy saw exactly its own input, as when asked alone.
        assert json.loads(by_id["sees"].deny[0]["message"]) == {"p": 2, "parameters": {}}
        assert by_id["limit"].deny == [{"code": "over", "message": "p"}]

        conflict = policy("conflict", 'x := 1\nx := 2 if input.p > 0\ndeny contains "c" if x == 1')
        asked.clear()
        outcomes = await evaluator.evaluate(
            Bundle.of([conflict, limit]),
            [("conflict", {**document, "parameters": {}}), ("limit", {**document, "parameters": {"max": 5}})],
        )
        by_id = {o.policy_id: o for o in outcomes}
        assert by_id["conflict"].failure is not None and by_id["conflict"].failure.code == "evaluation_error"
        assert by_id["limit"].failure is None and by_id["limit"].deny == []
        assert asked[0] == "policy_server/entry/combined/result" and len(asked) == 3  # then one by one
    finally:
        await evaluator.close()


async def test_impact_analysis_runs_the_same_with_decisions_on_opa(opa_client, fixtures_dir):
    # Decisions were answered by OPA; the replay runs on the authoring capacity and must count the same flips.
    from tests.integration import test_impact

    await test_impact.test_impact_counts_exactly_the_flips_the_change_makes(opa_client, fixtures_dir)
