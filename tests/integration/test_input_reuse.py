"""Reusing a decision's input while the state versions hold never answers from stale state."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

from policy_server.engine import RegopyEvaluator, Workbench, WorkerPool
from policy_server.kargo import Kind, ObjectKey, parse_body
from policy_server.service import PolicyService
from policy_server.service.decisions import DecisionService, DecisionSettings, Question
from policy_server.store import Database, DecisionStore, PolicyStore, StateStore, upgrade
from tests.integration.conftest import AR_E, PROD_P6, PROD_P7, watch_lines

FREIGHT = "759376cafc8e421500b205c6eef4f1989c05217f"


def _questions(names: list[str]) -> list[Question]:
    out = [Question("kargo-demo", promotion=name) for name in names]
    out += [Question("kargo-demo", stage=s, freight=f) for s in ("test", "uat", "prod") for f in (None, FREIGHT)]
    return out + [Question("kargo-demo", promotion="not-recorded"), Question("kargo-demo", stage="not-recorded")]


async def _service(database_url: str) -> tuple[Database, DecisionService]:
    db = Database(database_url)
    await upgrade(db)
    policies = PolicyService(
        PolicyStore(db), RegopyEvaluator(WorkerPool(1)), Workbench(WorkerPool(1, name="authoring"))
    )
    return db, DecisionService(StateStore(db), DecisionStore(db), policies, DecisionSettings(cache_ttl_s=60))


async def _fresh(state: StateStore, question: Question, now: datetime) -> dict:
    facts = await state.decision_facts(
        question.namespace, promotion=question.promotion, stage=question.stage, freight=question.freight
    )
    return DecisionService.document_for(facts, question, now)


async def test_reused_inputs_equal_a_fresh_read_at_every_step_of_the_watch_stream(database_url, fixtures_dir):
    db, service = await _service(database_url)
    state = service.state
    names: list[str] = []
    reused = 0
    try:
        for line in watch_lines(fixtures_dir):
            event = json.loads(line)
            await state.apply(parse_body(line.encode(), "application/x-ndjson"))
            if event["object"]["kind"] == "Promotion" and event["object"]["metadata"]["name"] not in names:
                names.append(event["object"]["metadata"]["name"])
            for question in _questions(names):
                for _ in range(2):  # the second time is answered from the reused input, when versions hold
                    now = datetime.now(UTC)
                    document = await service.input_for(question, now)
                    assert document == await _fresh(state, question, now), (line[:80], question)
            reused += 1
        hits = [k for k in service.kept()[0] if k[1] in names]
        assert hits and reused > 10
    finally:
        await db.dispose()


async def test_a_change_to_the_stage_its_promotions_runs_or_freight_is_seen_at_once(database_url, fixtures_dir):
    db, service = await _service(database_url)
    state = service.state
    try:
        for path in sorted((fixtures_dir / "snapshot").rglob("*.json")):
            await state.apply(parse_body(path.read_bytes(), "application/json"))
        question = Question("kargo-demo", promotion=PROD_P7)
        versions_before = (await service.state.decision_facts("kargo-demo", promotion=PROD_P7)).versions
        before = await service.input_for(question, datetime.now(UTC))

        # A verification run moved to another Stage by its label: prod's input no longer holds it.
        run = await state.get(ObjectKey(Kind.ANALYSIS_RUN, "kargo-demo", AR_E))
        assert run is not None and before["verification"] is not None
        moved = copy.deepcopy(run.object)
        moved["metadata"]["labels"]["kargo.akuity.io/stage"] = "uat"
        moved["metadata"]["resourceVersion"] = str(int(moved["metadata"]["resourceVersion"]) + 100000)
        await state.apply(parse_body(json.dumps(moved).encode(), "application/json"))
        after = await service.input_for(question, datetime.now(UTC))
        assert after == await _fresh(state, question, datetime.fromisoformat(after["now"]))
        assert (await state.versions("kargo-demo", "prod"))[1] > versions_before[1]

        # A Freight's status changes: every Stage of the namespace reads it again.
        freight = await state.get(ObjectKey(Kind.FREIGHT, "kargo-demo", FREIGHT))
        assert freight is not None
        changed = copy.deepcopy(freight.object)
        changed["status"]["verifiedIn"] = {"somewhere-new": {}}
        changed["metadata"]["resourceVersion"] = str(int(changed["metadata"]["resourceVersion"]) + 100000)
        await state.apply(parse_body(json.dumps(changed).encode(), "application/json"))
        with_freight = await service.input_for(Question("kargo-demo", stage="prod", freight=FREIGHT), datetime.now(UTC))
        assert "somewhere-new" in with_freight["freight"][FREIGHT]["verified_in"]

        # A Promotion deleted through the API's delete path.
        assert await state.delete(ObjectKey(Kind.PROMOTION, "kargo-demo", PROD_P6))
        gone = await service.input_for(question, datetime.now(UTC))
        assert PROD_P6 not in gone["queue"]
        assert gone == await _fresh(state, question, datetime.fromisoformat(gone["now"]))
    finally:
        await db.dispose()


async def test_kept_inputs_and_verdicts_stay_bounded(database_url, fixtures_dir):
    """Memory stays flat however many questions are asked: inputs and verdicts up to ``cache_entries``, verdicts
    of a policy set that reads the time for one TTL only."""
    import asyncio

    db = Database(database_url)
    await upgrade(db)
    policies = PolicyService(
        PolicyStore(db), RegopyEvaluator(WorkerPool(1)), Workbench(WorkerPool(1, name="authoring"))
    )
    settings = DecisionSettings(cache_ttl_s=0.2, cache_entries=5)
    service = DecisionService(StateStore(db), DecisionStore(db), policies, settings)
    try:
        await service.state.apply(parse_body((fixtures_dir / "list-kargo-demo.json").read_bytes(), "application/json"))
        questions = [
            Question("kargo-demo", stage=s, freight=f"f{n}") for s in ("test", "uat", "prod") for n in range(4)
        ]
        for question in questions:
            await service.decide(question)
        inputs, verdicts = service.kept()
        assert len(inputs) == 5 and verdicts <= 5
        assert inputs[-1] == ("kargo-demo", None, "prod", "f3", "start")  # the newest are kept
        # The built-ins do not read the time: their verdicts hold while their inputs do, up to cache_entries.
        await asyncio.sleep(0.3)
        await service.decide(questions[0])
        assert 1 < service.kept()[1] <= 5
        # A policy that reads the time (freeze windows): its set's verdicts hold for one TTL only.
        await policies.restore("freeze-window", author="test", comment="a policy that reads the time")
        for question in questions[:4]:
            await service.decide(question)
        await asyncio.sleep(0.3)
        await service.decide(questions[0])
        assert service.kept()[1] == 1  # the expired verdicts went with the next one
    finally:
        await service.log.close()
        await policies.engine.close()
        await policies.workbench.close()
        await db.dispose()
