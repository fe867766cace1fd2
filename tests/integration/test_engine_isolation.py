"""Decisions and authoring never share capacity, and no stale view of a worker fails a decision."""

from __future__ import annotations

import asyncio
import time

import pytest

from policy_server.engine import (
    ENGINE_BUSY,
    POLICY_UNPREPARED,
    Bundle,
    PolicyCode,
    PoolLimits,
    RegopyEvaluator,
    Workbench,
    WorkerFailure,
    WorkerPool,
)
from policy_server.engine._protocol import Call, Compile, Compiled, EvaluateEach
from policy_server.engine._worker import BUNDLE_SLOTS
from policy_server.errors import AuthoringBusy


def demo(policy_id: str, body: str) -> PolicyCode:
    return PolicyCode(policy_id, f"package policies.{policy_id}\n\nimport rego.v1\n\n{body}\n")


GOOD = demo("good", 'deny contains {"code": "too_big", "message": "p > 1"} if input.p > 1')
SLOW = demo("slow", 'deny contains "n" if {\n\tsome i in numbers.range(1, 1000000000)\n\ti < 0\n}')
LIMIT = demo("limit", 'deny contains {"code": "over", "message": "n"} if input.n > input.parameters.max')
STRICT = demo("strict", 'deny contains {"code": "strict", "message": "on"} if input.parameters.strict == true')


async def test_a_worker_that_dropped_the_active_set_compiles_it_again_and_answers():
    evaluator = RegopyEvaluator(WorkerPool(1))
    try:
        bundle = Bundle.of([GOOD])
        (outcome,) = await evaluator.evaluate(bundle, [("good", {"p": 2})])
        assert outcome.deny and outcome.failure is None
        # Other bundles fill the worker's slots behind the pool's back: the active set is dropped.
        for n in range(BUNDLE_SLOTS + 1):
            other = Bundle.of([demo(f"other{n}", 'deny contains "x" if input.x')])
            reply = await evaluator.pool.ask(other.compile_request())
            assert isinstance(reply, Compiled)
        assert bundle.key not in reply.held
        (outcome,) = await evaluator.evaluate(bundle, [("good", {"p": 2})])
        assert outcome.failure is None and outcome.deny == [{"code": "too_big", "message": "p > 1"}]
        assert evaluator.pool.restarts == 0
        # The pool's view is the worker's: it learnt what the worker holds from its replies.
        (worker,) = evaluator.pool.workers()
        assert bundle.key in worker.compiled and len(worker.compiled) <= BUNDLE_SLOTS
    finally:
        await evaluator.close()


async def test_an_evaluation_without_its_bundle_is_answered_missing_not_a_generic_error():
    pool = WorkerPool(1)
    try:
        bundle = Bundle.of([GOOD])
        request = EvaluateEach(bundle.key, [Call(bundle.entrypoints["good"], {"p": 2})])
        results = await pool.evaluate(bundle.compile_request(), request)
        assert results.results[0].value["deny"]
        from policy_server.engine._protocol import Missing

        reply = await pool.ask(EvaluateEach("never-compiled", request.calls))
        assert isinstance(reply, Missing) and reply.key == "never-compiled" and bundle.key in reply.held
    finally:
        await pool.close()


async def test_a_decision_waits_for_a_worker_only_until_its_deadline():
    pool = WorkerPool(1, PoolLimits(timeout_s=3))
    try:
        slow = Bundle.of([SLOW])
        busy = asyncio.create_task(
            pool.evaluate(slow.compile_request(), EvaluateEach(slow.key, [Call(slow.entrypoints["slow"], {})]))
        )
        await asyncio.sleep(0.3)
        good = Bundle.of([GOOD])
        started = time.monotonic()
        with pytest.raises(WorkerFailure) as failure:
            request = EvaluateEach(good.key, [Call(good.entrypoints["good"], {"p": 2})])
            await pool.evaluate(good.compile_request(), request, timeout_s=0.5)
        assert failure.value.code == ENGINE_BUSY and time.monotonic() - started < 1.5
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
    finally:
        await pool.close()


async def test_authoring_capacity_turns_requests_away_when_full_and_decisions_are_untouched():
    decisions = RegopyEvaluator(WorkerPool(1))
    workbench = Workbench(WorkerPool(1, PoolLimits(timeout_s=2), name="authoring", nice=10), max_waiting=1)
    try:
        slow = Bundle.of([SLOW])
        drafts = [asyncio.create_task(workbench.evaluate(slow, [("slow", {})])) for _ in range(2)]
        await asyncio.sleep(0.2)
        with pytest.raises(AuthoringBusy):
            await workbench.evaluate(slow, [("slow", {})])
        # Meanwhile decisions are answered at once on their own worker.
        started = time.monotonic()
        (outcome,) = await decisions.evaluate(Bundle.of([GOOD]), [("good", {"p": 2})])
        assert outcome.deny and time.monotonic() - started < 1.0
        assert not set(decisions.pool.pids) & set(workbench.pool.pids)
        for draft in drafts:
            (outcome,) = await draft
            assert outcome.failure is not None  # the runaway drafts fail closed at their own deadline
    finally:
        await decisions.close()
        await workbench.close()


async def test_a_policy_whose_parameters_cannot_be_carried_fails_alone():
    evaluator = RegopyEvaluator(WorkerPool(1))
    try:
        parameters = {"limit": {"max": 2**70}, "strict": {"strict": True}}
        bundle = Bundle.of([LIMIT, STRICT], parameters)
        assert set(bundle.unprepared) == {"limit"}
        document = {"n": 5}
        outcomes = await evaluator.evaluate(
            bundle, [(pid, {**document, "parameters": parameters[pid]}) for pid in ("limit", "strict")]
        )
        by_id = {o.policy_id: o for o in outcomes}
        assert by_id["limit"].failure is not None and by_id["limit"].failure.code == POLICY_UNPREPARED
        assert "64 bits" in by_id["limit"].failure.message
        assert by_id["strict"].failure is None and [d["code"] for d in by_id["strict"].deny] == ["strict"]
    finally:
        await evaluator.close()


async def test_the_pool_never_compiles_in_the_zygote_what_authors_submit():
    pool = WorkerPool(1, name="authoring", warm_zygote=False)
    try:
        bundle = Bundle.of([GOOD])
        request = EvaluateEach(bundle.key, [Call(bundle.entrypoints["good"], {"p": 2})])
        await pool.evaluate(bundle.compile_request(), request)
        await asyncio.sleep(0.2)
        zygote = pool.zygote()
        assert zygote is not None and bundle.key not in zygote.compiled
    finally:
        await pool.close()


def test_compile_requests_are_typed():
    request = Bundle.of([GOOD]).compile_request()
    assert isinstance(request, Compile) and request.entrypoints and request.modules
