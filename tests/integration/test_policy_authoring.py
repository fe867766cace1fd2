"""Authoring UX: PATCH without the source, warnings when a PUT drops something, declared parameter schemas, a clear
422 for a rollback without a body, and the Freight of every logged decision."""

from __future__ import annotations

from tests.integration.conftest import PROD_P6, post

SOURCE = """package policies.limit

import rego.v1

deny contains {"code": "too_long", "message": "queue too long"} if count(input.queue) > input.parameters.max
"""
TESTS = {
    "policy_test.rego": (
        "package policies.limit_test\n\nimport rego.v1\n\nimport data.policies.limit\n\n"
        "test_a_short_queue_passes if {\n"
        "\tcount(limit.deny) == 0 with input.queue as [] with input.parameters.max as 5\n}\n"
    )
}
SCHEMA = {
    "type": "object",
    "properties": {"max": {"type": "integer", "minimum": 1}},
    "required": ["max"],
    "additionalProperties": False,
}


async def test_patch_changes_settings_without_the_source_and_is_checked_and_audited(client):
    body = {"source": SOURCE, "tests": TESTS, "title": "Limit", "parameters": {"max": 5}, "parameters_schema": SCHEMA}
    assert (await client.put("/v1/policies/limit", json=body)).status_code == 200
    patched = await client.patch(
        "/v1/policies/limit",
        json={"mode": "warn", "parameters": {"max": 3}, "scope": {"stages": ["prod"]}, "comment": "softer"},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    active = patched.json()["active"]
    assert (active["number"], active["mode"], active["parameters"]) == (2, "warn", {"max": 3})
    assert active["scope"] == {"namespaces": ["*"], "stages": ["prod"], "points": ["start"]}
    assert active["source"] == SOURCE and active["tests"] == TESTS and active["title"] == "Limit"
    assert active["comment"] == "softer" and active["parameters_schema"] == SCHEMA
    audit = (await client.get("/v1/audit", params={"target": "policy/limit"})).json()["items"][0]
    assert audit["detail"]["mode_changed"] is True and audit["detail"]["source_changed"] is False

    # Parameters are checked against the declared schema at every write, PATCH included: nothing changes.
    for parameters in ({"max": 0}, {"max": "3"}, {"max": 3, "extra": True}):
        refused = await client.patch("/v1/policies/limit", json={"parameters": parameters})
        assert refused.status_code == 422, parameters
        assert {e["code"] for e in refused.json()["errors"]} == {"invalid_parameters"}
    removed = await client.patch("/v1/policies/limit", json={"parameters": {"max": None}})
    assert removed.status_code == 422 and "required" in removed.json()["errors"][0]["message"]
    assert (await client.get("/v1/policies/limit")).json()["active"]["number"] == 2

    bad_schema = await client.patch("/v1/policies/limit", json={"parameters_schema": {"type": "nonsense"}})
    assert bad_schema.status_code == 422 and bad_schema.json()["errors"][0]["code"] == "invalid_parameters_schema"
    nothing = await client.patch("/v1/policies/limit", json={"comment": "no change"})
    assert nothing.status_code == 422
    unknown = await client.patch("/v1/policies/limit", json={"source": "package x"})
    assert unknown.status_code == 422  # the source changes only with PUT
    assert (await client.patch("/v1/policies/nosuch", json={"mode": "warn"})).status_code == 404


async def test_a_put_that_drops_tests_or_metadata_says_so(client):
    body = {"source": SOURCE, "tests": TESTS, "title": "Limit", "description": "d", "parameters": {"max": 5}}
    first = await client.put("/v1/policies/limit", json=body)
    assert first.status_code == 200 and first.json()["warnings"] == []
    bare = await client.put("/v1/policies/limit", json={"source": SOURCE, "parameters": {"max": 5}})
    assert bare.status_code == 200
    warnings = " | ".join(bare.json()["warnings"])
    assert "policy_test.rego" in warnings and "title" in warnings and "description" in warnings
    same = await client.put("/v1/policies/limit", json={"source": SOURCE, "parameters": {"max": 5}})
    assert same.json()["warnings"] == []


async def test_a_rollback_without_a_body_is_a_clear_422(client):
    for body in (None, b""):
        response = await client.post("/v1/policies/admission/rollback", content=body)
        assert response.status_code == 422, response.text
        problem = response.json()
        assert "revision" in problem["detail"] and problem["errors"][0]["field"] == "revision"
    assert (await client.get("/v1/policies/admission")).json()["active"]["number"] == 1


async def test_built_in_parameter_schemas_refuse_a_typo(client):
    refused = await client.patch("/v1/policies/block-while-verifying", json={"parameters": {"hold_unhelathy": True}})
    assert refused.status_code == 422 and refused.json()["errors"][0]["code"] == "invalid_parameters"
    ok = await client.patch("/v1/policies/block-while-verifying", json={"parameters": {"hold_unhealthy": True}})
    assert ok.status_code == 200 and ok.json()["active"]["parameters"] == {"hold_unhealthy": True}


async def test_the_log_keeps_the_freight_the_answer_gave(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    answered = (
        await client.post("/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": PROD_P6}})
    ).json()
    assert answered["freight"]
    logged = (await client.get(f"/v1/decisions/{answered['id']}")).json()
    assert logged["freight"] == answered["freight"]
    listed = (await client.get("/v1/decisions", params={"promotion": PROD_P6})).json()["items"][0]
    assert listed["freight"] == answered["freight"]


async def test_an_unknown_query_parameter_is_a_422_not_an_unfiltered_answer(client):
    response = await client.get("/v1/decisions", params={"stge": "prod"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "stge"
    assert (await client.get("/v1/decisions", params={"stage": "prod"})).status_code == 200


async def test_bodies_must_have_their_declared_types(client):
    for body in ({"promotion": {"namespace": "kargo-demo", "name": PROD_P6}, "claim": 0},
                 {"promotion": {"namespace": "kargo-demo", "name": 7}}):  # fmt: skip
        response = await client.post("/v1/decisions", json=body)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["field"] in ("claim", "promotion.name")


async def test_options_names_every_method_without_a_token(client):
    del client.headers["authorization"]
    response = await client.options("/v1/policies/admission")
    assert response.status_code == 204
    assert response.headers["allow"] == "DELETE, GET, OPTIONS, PATCH, PUT"
