"""A logged decision becomes a Rego test for the policy that decided: added to the policy's tests it passes, and it
fails (the write is refused) once a change would decide that Promotion differently."""

from __future__ import annotations

from tests.conftest import app_client
from tests.integration.conftest import AR_E, NDJSON, PROD_P6, PROD_P7, post, watch_lines
from tests.integration.test_decisions import decide
from tests.integration.test_no_wedge import Cluster, run_ended


async def _write(client, policy_id: str, **changes):
    active = (await client.get(f"/v1/policies/{policy_id}")).json()["active"]
    body = {k: active[k] for k in ("source", "tests", "mode", "scope", "parameters", "parameters_schema")}
    body.update(changes)
    return await client.put(f"/v1/policies/{policy_id}", json=body)


async def test_a_denial_becomes_a_regression_test_that_guards_the_policy(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    await post(client, "\n".join(watch_lines(fixtures_dir)[:7]), NDJSON)  # AR-e failed
    decision = await decide(client, PROD_P6)
    assert decision["allow"] is False

    answer = await client.get(f"/v1/decisions/{decision['id']}/test")
    assert answer.status_code == 200, answer.text
    test = answer.json()
    assert test["policy"] == "cancel-queue-on-failure" and test["revision"] == 1 and test["mode"] == "enforce"
    assert test["denies"] == ["verification_failed"] and test["aborts"] == sorted([PROD_P6, PROD_P7])
    assert test["file"].endswith("_test.rego") and test["test"] in test["source"]
    assert decision["id"] in test["source"]

    # Added to the policy's tests, it passes (on regopy, and on OPA when configured).
    active = (await client.get("/v1/policies/cancel-queue-on-failure")).json()["active"]
    written = await _write(client, "cancel-queue-on-failure", tests={**active["tests"], test["file"]: test["source"]})
    assert written.status_code == 200, written.text

    # A change that would decide P6 differently is refused, naming the decision's test. (The test carries the
    # deciding revision's parameters: it guards the code.)
    changed = active["source"].replace('"code": "verification_failed"', '"code": "verification_gone_wrong"')
    refused = await _write(
        client, "cancel-queue-on-failure", source=changed, tests={**active["tests"], test["file"]: test["source"]}
    )
    assert refused.status_code == 422, refused.text
    failing = [e for e in refused.json()["errors"] if e["code"] == "test_fail"]
    assert any(test["test"] in e["message"] for e in failing), refused.json()["errors"]


async def test_an_allowed_decision_needs_the_policy_named_and_a_users_policy_works_too(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    source = (
        "package team.no_friday\n\nimport rego.v1\n\n"
        "deny contains d if some d in denials(input)\n\n"
        'denials(inp) := {{"code": "no_prod_on_friday", "message": "not today"}} if {\n'
        '\tinp.stage.name == "uat"\n\tnot inp.parameters.allow_friday\n} else := set()\n'
    )
    created = await client.put("/v1/policies/no-friday", json={"source": source, "scope": {"stages": ["uat"]}})
    assert created.status_code in (200, 201), created.text
    uat_head = "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"
    denied = await decide(client, uat_head)
    test = (await client.get(f"/v1/decisions/{denied['id']}/test")).json()
    assert test["policy"] == "no-friday" and test["denies"] == ["no_prod_on_friday"]
    assert "policy.denials(_decision_" in test["source"] and test["warnings"] == []
    written = await client.put("/v1/policies/no-friday", json={"source": source, "scope": {"stages": ["uat"]},
                                                                "tests": {test["file"]: test["source"]}})  # fmt: skip
    assert written.status_code == 200, written.text

    # Several policies allowed: say which.
    cluster = Cluster(client, fixtures_dir)
    await cluster.change("AnalysisRun", AR_E, run_ended("Successful", "2026-08-12T10:33:52Z"))
    prod_head = await decide(client, PROD_P6)
    assert prod_head["allow"] is True
    ambiguous = await client.get(f"/v1/decisions/{prod_head['id']}/test")
    assert ambiguous.status_code in (400, 422), ambiguous.text
    assert "?policy=" in ambiguous.json()["detail"]
    named = await client.get(f"/v1/decisions/{prod_head['id']}/test", params={"policy": "admission"})
    assert named.status_code == 200 and named.json()["denies"] == [] and named.json()["aborts"] == []
    stranger = await client.get(f"/v1/decisions/{prod_head['id']}/test", params={"policy": "nope"})
    assert stranger.status_code in (400, 422)
    assert (await client.get("/v1/decisions/01M8TDE6HE6SEEGGXRP524V15N/test")).status_code == 404


async def test_only_readers_of_the_namespace_see_the_test(client, settings, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    decision = await decide(client, PROD_P6)
    created = await client.post("/v1/tokens", json={"name": "pay", "role": "reader", "namespaces": ["payments"]})
    async with app_client(settings, token=created.json()["token"]) as other:
        answer = await other.get(f"/v1/decisions/{decision['id']}/test", params={"policy": "admission"})
        assert answer.status_code in (403, 404), answer.text


async def test_a_policy_without_the_denials_convention_gets_a_test_and_a_warning(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    source = (
        "package team.plain\n\nimport rego.v1\n\n"
        'deny contains {"code": "plain", "message": "no"} if input.stage.name == "uat"\n'
    )
    assert (await client.put("/v1/policies/plain", json={"source": source, "scope": {"stages": ["uat"]}})).is_success
    denied = await decide(client, "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689")
    test = (await client.get(f"/v1/decisions/{denied['id']}/test")).json()
    assert "policy.deny with input as" in test["source"]
    assert "denials(inp)" in test["warnings"][0]
    # As the warning says, regopy cannot run it: the write is refused with the test's error, nothing changes.
    written = await client.put("/v1/policies/plain", json={"source": source, "scope": {"stages": ["uat"]},
                                                            "tests": {test["file"]: test["source"]}})  # fmt: skip
    assert written.status_code == 422 and written.json()["errors"][0]["code"] == "test_error"
    assert (await client.get("/v1/policies/plain")).json()["active"]["tests"] == {}
