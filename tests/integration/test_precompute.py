"""Verdicts computed when a Stage's state changes answer the next question without evaluating, and never outlive
the state, the policy set or (for policies that read the time) their expiry."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from policy_server.service.policies import reads_time
from tests.integration.conftest import AR_E, PROD_P6, PROD_P7, post, settled


async def _metric(client: Any, name: str, result: str) -> float:
    text = (await client.get("/metrics")).text
    match = re.search(rf'^{name}_total{{result="{result}"}} ([\d.e+]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


async def _codes(client: Any, promotion: str) -> set[str]:
    response = await client.post("/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": promotion}})
    assert response.status_code == 200, response.text
    return {r["code"] for r in response.json()["reasons"]}


async def _the_run_passes(client: Any, fixtures_dir: Any) -> None:
    """Argo Rollouts records P6's verification run as Successful."""
    demo = json.loads((fixtures_dir / "list-kargo-demo.json").read_text())
    run = copy.deepcopy(next(i for i in demo["items"] if i["metadata"]["name"] == AR_E))
    run["metadata"]["resourceVersion"] = "990001"
    run["status"]["phase"] = "Successful"
    assert (await post(client, run)).status_code == 200


async def test_the_first_question_after_a_change_is_answered_from_the_verdict_computed_then(client, fixtures_dir):
    assert (await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())).status_code == 200
    await settled(client)
    misses = await _metric(client, "policy_server_verdict_cache", "miss")
    used = await _metric(client, "policy_server_precomputed_verdicts", "used")
    # Nobody asked about P6 or P7 yet: their verdicts were computed when the state was recorded.
    assert "verification_in_progress" in await _codes(client, PROD_P6)
    assert "verification_in_progress" in await _codes(client, PROD_P7)
    assert await _metric(client, "policy_server_precomputed_verdicts", "used") == used + 2
    assert await _metric(client, "policy_server_verdict_cache", "miss") == misses  # nothing evaluated

    # The run passes: the next question must not get the verdict computed before that change, however soon
    # it comes; once the new verdict is computed, it answers.
    await _the_run_passes(client, fixtures_dir)
    assert "verification_in_progress" not in await _codes(client, PROD_P6)
    await settled(client)
    used = await _metric(client, "policy_server_precomputed_verdicts", "used")
    assert "verification_in_progress" not in await _codes(client, PROD_P7)
    assert await _metric(client, "policy_server_precomputed_verdicts", "used") == used + 1


async def test_a_question_asked_again_is_answered_from_what_the_precomputed_answer_kept(client, fixtures_dir):
    """After a precomputed verdict answered, asking again reads only the probe (the input and verdict are kept),
    and a change is still seen at once."""
    assert (await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())).status_code == 200
    await settled(client)
    used = await _metric(client, "policy_server_precomputed_verdicts", "used")
    reused = await _metric(client, "policy_server_input_reuse", "hit")
    misses = await _metric(client, "policy_server_verdict_cache", "miss")
    for _ in range(3):
        assert "verification_in_progress" in await _codes(client, PROD_P6)
    assert await _metric(client, "policy_server_precomputed_verdicts", "used") == used + 1
    assert await _metric(client, "policy_server_input_reuse", "hit") == reused + 2
    assert await _metric(client, "policy_server_verdict_cache", "miss") == misses  # nothing evaluated

    await _the_run_passes(client, fixtures_dir)
    assert "verification_in_progress" not in await _codes(client, PROD_P6)


async def test_only_the_head_of_a_long_queue_is_computed_ahead(client, fixtures_dir):
    """The one running or next to start and the one after it (``precompute_depth`` 2): a Promotion further back
    is evaluated when asked, so a Stage with a long queue costs as little as one with a short queue."""
    demo = json.loads((fixtures_dir / "list-kargo-demo.json").read_text())
    p7 = next(i for i in demo["items"] if i["metadata"]["name"] == PROD_P7)
    later = [copy.deepcopy(p7) for _ in range(3)]
    for n, promotion in enumerate(later):
        promotion["metadata"]["name"] = f"prod.01kztrg{n}00000000000000000.10a9340"  # queued after P7
        promotion["metadata"]["uid"] = f"later-{n}"
        promotion["metadata"]["creationTimestamp"] = f"2099-01-01T00:00:0{n}Z"
    demo["items"] += later
    assert (await post(client, demo)).status_code == 200
    await settled(client)
    used = await _metric(client, "policy_server_precomputed_verdicts", "used")
    misses = await _metric(client, "policy_server_verdict_cache", "miss")
    for promotion in (PROD_P6, PROD_P7):
        assert "verification_in_progress" in await _codes(client, promotion)
    assert await _metric(client, "policy_server_precomputed_verdicts", "used") == used + 2
    assert await _metric(client, "policy_server_verdict_cache", "miss") == misses
    assert "verification_in_progress" in await _codes(client, later[-1]["metadata"]["name"])
    assert await _metric(client, "policy_server_precomputed_verdicts", "used") == used + 2
    assert await _metric(client, "policy_server_verdict_cache", "miss") == misses + 1  # evaluated when asked


async def test_a_policy_change_makes_precomputed_verdicts_stale(client, fixtures_dir):
    assert (await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())).status_code == 200
    await settled(client)
    assert (await client.delete("/v1/policies/block-while-verifying")).status_code == 200
    stale = await _metric(client, "policy_server_precomputed_verdicts", "stale")
    assert "verification_in_progress" not in await _codes(client, PROD_P6)
    assert await _metric(client, "policy_server_precomputed_verdicts", "stale") == stale + 1


def test_policies_that_read_the_time_are_told_apart():
    assert reads_time('package p\nimport rego.v1\ndeny contains "x" if input.now_ns > 5\n')
    assert reads_time('package p\nimport rego.v1\ndeny contains "x" if time.now_ns() > 5\n')
    assert reads_time('package p\nimport rego.v1\nf(inp) := inp["now"]\n')
    assert not reads_time(
        'package p\nimport rego.v1\n# not now\ndeny contains "x" if input.stage.health == "Unknown"\n'
    )


async def test_a_stage_s_precomputed_inputs_are_the_ones_its_questions_read(database_url, fixtures_dir):
    """One read of the Stage serves every queued Promotion's verdict: each input is exactly the one a question
    about that Promotion reads itself (so the verdict is the one it would get)."""
    from datetime import UTC, datetime

    from policy_server.engine import RegopyEvaluator, Workbench, WorkerPool
    from policy_server.kargo import parse_body
    from policy_server.service import PolicyService
    from policy_server.service.decisions import DecisionService, Question
    from policy_server.store import Database, DecisionStore, PolicyStore, StateStore, decode_input, upgrade

    db = Database(database_url)
    await upgrade(db)
    policies = PolicyService(
        PolicyStore(db), RegopyEvaluator(WorkerPool(1)), Workbench(WorkerPool(1, name="authoring"))
    )
    service = DecisionService(StateStore(db), DecisionStore(db), policies)
    try:
        await service.state.apply(parse_body((fixtures_dir / "list-kargo-demo.json").read_bytes(), "application/json"))
        verdicts = await service.precompute_stage("kargo-demo", "prod")
        assert {v.promotion for v in verdicts} == {PROD_P6, PROD_P7}
        for verdict in verdicts:
            stored = decode_input(verdict.input_encoding, verdict.input_body)
            asked = await service.input_for(Question("kargo-demo", promotion=verdict.promotion), datetime.now(UTC))
            for document in (stored, asked):
                del document["now"], document["now_ns"]
            assert stored == asked
            single = await service.precompute("kargo-demo", verdict.promotion)
            assert single is not None and single.input_hash == verdict.input_hash and single.verdict == verdict.verdict
    finally:
        await service.log.close()
        await policies.engine.close()
        await policies.workbench.close()
        await db.dispose()


async def test_verdicts_the_state_has_moved_past_are_pruned(database_url, fixtures_dir):
    """A verdict computed at state versions that have moved on can never answer again (versions only grow): the
    retention round forgets it, whatever its age, and keeps the verdicts that still hold."""
    from policy_server.engine import RegopyEvaluator, Workbench, WorkerPool
    from policy_server.kargo import parse_body
    from policy_server.service import PolicyService
    from policy_server.service.decisions import DecisionService
    from policy_server.store import Database, DecisionStore, PolicyStore, StateStore, VerdictStore, upgrade

    db = Database(database_url)
    await upgrade(db)
    policies = PolicyService(
        PolicyStore(db), RegopyEvaluator(WorkerPool(1)), Workbench(WorkerPool(1, name="authoring"))
    )
    service = DecisionService(StateStore(db), DecisionStore(db), policies)
    store = VerdictStore(db)
    demo = json.loads((fixtures_dir / "list-kargo-demo.json").read_text())

    def changed(name: str) -> bytes:
        item = copy.deepcopy(next(i for i in demo["items"] if i["metadata"]["name"] == name))
        item["metadata"]["resourceVersion"] = str(int(item["metadata"]["resourceVersion"]) + 1000)
        if item["kind"] == "AnalysisRun":
            item["status"]["phase"] = "Successful"
        else:
            item["metadata"].setdefault("labels", {})["touched"] = "yes"
        return json.dumps(item).encode()

    try:
        await service.state.apply(parse_body(json.dumps(demo).encode(), "application/json"))
        await store.save(await service.precompute_stage("kargo-demo", "prod"))
        await store.save(await service.precompute_stage("kargo-demo", "uat"))
        prod = {PROD_P6, PROD_P7}
        uat = {v.promotion for v in await service.precompute_stage("kargo-demo", "uat")}
        assert uat and not uat & prod
        assert await store.prune(0) == 0  # every verdict still holds

        await service.state.apply(parse_body(changed(AR_E), "application/json"))  # prod's run passes
        assert await store.prune(0) == 2
        assert all([await store.get("kargo-demo", p) is None for p in prod])
        assert all([await store.get("kargo-demo", p) is not None for p in uat])  # uat's state did not move

        await store.save(await service.precompute_stage("kargo-demo", "prod"))  # computed at the new versions
        assert await store.prune(0) == 0
        freight = next(i["metadata"]["name"] for i in demo["items"] if i["kind"] == "Freight")
        await service.state.apply(parse_body(changed(freight), "application/json"))  # the namespace's Freight
        assert await store.prune(0) == 2 + len(uat)
        assert await store.prune(int(9e18)) == 0  # (nothing left)
    finally:
        await service.log.close()
        await policies.engine.close()
        await policies.workbench.close()
        await db.dispose()
