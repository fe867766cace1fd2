"""The regopy evaluator: built-in policy tests pass, and crashes, loops and ReDoS fail closed in time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from policy_server.engine import (
    ENGINE_CRASHED,
    EVALUATION_MEMORY,
    EVALUATION_TIMEOUT,
    EVALUATION_UNDEFINED,
    Bundle,
    PolicyCode,
    PoolLimits,
    RegopyEvaluator,
    Workbench,
    WorkerPool,
)
from tests.conftest import ROOT

DEADLINE_S = 2.0


def builtin_policies() -> list[PolicyCode]:
    out = []
    for directory in sorted((ROOT / "policies").iterdir()):
        if (directory / "policy.rego").is_file():
            tests = {f.name: f.read_text() for f in directory.glob("*_test.rego")}
            out.append(PolicyCode(directory.name, (directory / "policy.rego").read_text(), tests))
    return out


def regopy(size: int = 1, limits: PoolLimits | None = None) -> RegopyEvaluator:
    return RegopyEvaluator(WorkerPool(size, limits))


@pytest.fixture
async def evaluator():
    engine = regopy(1, PoolLimits(timeout_s=DEADLINE_S, memory_bytes=512 * 1024 * 1024))
    yield engine
    await engine.close()


@pytest.fixture
async def workbench():
    bench = Workbench(WorkerPool(1, PoolLimits(timeout_s=DEADLINE_S), name="authoring"))
    yield bench
    await bench.close()


def demo(policy_id: str, body: str) -> PolicyCode:
    return PolicyCode(policy_id, f"package policies.{policy_id}\n\nimport rego.v1\n\n{body}\n")


GOOD = demo("good", 'deny contains {"code": "too_big", "message": "p > 1"} if input.p > 1')


async def assert_still_answers(evaluator):
    (outcome,) = await evaluator.evaluate(Bundle.of([GOOD]), [("good", {"p": 2})])
    assert outcome.failure is None
    assert outcome.deny == [{"code": "too_big", "message": "p > 1"}]


@pytest.mark.parametrize("policy", builtin_policies(), ids=lambda p: p.policy_id)
async def test_every_builtin_policy_test_passes(workbench, policy):
    assert await workbench.check(policy) == []
    results = await workbench.run_tests(policy)
    assert len(results) >= 5
    assert [(r.name, r.status, r.message) for r in results if r.status != "pass"] == []


async def test_a_failing_test_is_reported_as_fail_not_pass(workbench):
    policy = PolicyCode(
        "demo",
        GOOD.source.replace("policies.good", "policies.demo"),
        {
            "policy_test.rego": "package policies.demo_test\n\nimport rego.v1\n\n"
            "test_passes if { 1 == 1 }\n\ntest_fails if { 1 == 2 }\n\ntest_false := false\n"
        },
    )
    results = {r.name: r.status for r in await workbench.run_tests(policy)}
    assert results == {"test_passes": "pass", "test_fails": "fail", "test_false": "fail"}


async def test_a_policy_that_segfaults_regopy_fails_closed_and_the_next_request_is_answered(evaluator):
    # `with input as` over a rule that calls a builtin on input crashes regopy 1.5.2.
    crash = demo(
        "crash",
        "_big if count(input.items) > 2\n\n"
        "allowed if not _big\n\n"
        'deny contains {"code": "x", "message": "y"} if {\n\tnot allowed with input as {"items": [1, 2, 3]}\n}',
    )
    started = time.monotonic()
    (outcome,) = await evaluator.evaluate(Bundle.of([crash]), [("crash", {"items": []})])
    assert time.monotonic() - started < DEADLINE_S + 1
    assert outcome.failure is not None and outcome.failure.code == ENGINE_CRASHED
    await assert_still_answers(evaluator)


async def test_a_crashing_unit_test_is_an_error_and_other_tests_still_run(workbench):
    policy = PolicyCode(
        "demo",
        "package policies.demo\n\nimport rego.v1\n\ndeny contains 1 if count(input.items) > 2\n",
        {
            "policy_test.rego": "package policies.demo_test\n\nimport rego.v1\n\n"
            "test_ok if { 1 == 1 }\n\n"
            'test_crashes if {\n\td := data.policies.demo.deny with input as {"items": [1, 2, 3]}\n\tcount(d) == 1\n}\n'
        },
    )
    results = {r.name: (r.status, r.message or "") for r in await workbench.run_tests(policy)}
    assert results["test_ok"] == ("pass", "")
    assert results["test_crashes"][0] == "error" and ENGINE_CRASHED in results["test_crashes"][1]


async def test_a_loop_over_a_huge_range_fails_closed_within_the_deadline(evaluator):
    loop = demo("loop", 'deny contains "n" if {\n\tsome i in numbers.range(1, 1000000000)\n\ti < 0\n}')
    started = time.monotonic()
    (outcome,) = await evaluator.evaluate(Bundle.of([loop]), [("loop", {})])
    assert time.monotonic() - started < DEADLINE_S + 1
    assert outcome.failure is not None and outcome.failure.code in (EVALUATION_TIMEOUT, EVALUATION_MEMORY)
    await assert_still_answers(evaluator)


async def test_memory_watchdog_stops_a_runaway_evaluation():
    engine = regopy(1, PoolLimits(timeout_s=30, memory_bytes=300 * 1024 * 1024))
    try:
        hog = demo("hog", 'deny contains "n" if count(numbers.range(1, 1000000000)) > 0')
        started = time.monotonic()
        (outcome,) = await engine.evaluate(Bundle.of([hog]), [("hog", {})])
        assert outcome.failure is not None and outcome.failure.code == EVALUATION_MEMORY
        assert time.monotonic() - started < 15
        await assert_still_answers(engine)
    finally:
        await engine.close()


async def test_a_redos_regex_on_a_long_input_fails_closed_within_the_deadline(evaluator):
    redos = demo("redos", 'deny contains "r" if regex.match(`^(a+)+$`, input.s)')
    started = time.monotonic()
    (outcome,) = await evaluator.evaluate(Bundle.of([redos]), [("redos", {"s": "a" * 40 + "!"})])
    assert time.monotonic() - started < DEADLINE_S + 1
    assert outcome.failure is not None and outcome.failure.code == EVALUATION_TIMEOUT
    await assert_still_answers(evaluator)


async def test_a_regex_over_a_huge_string_crashes_regopy_and_fails_closed(evaluator):
    big = demo("big", 'deny contains "r" if regex.match(`^(a|b)*$`, input.s)')
    (outcome,) = await evaluator.evaluate(Bundle.of([big]), [("big", {"s": "ab" * 100_000})])
    assert outcome.failure is not None and outcome.failure.code in (ENGINE_CRASHED, EVALUATION_TIMEOUT)
    await assert_still_answers(evaluator)


async def test_an_undefined_result_is_a_failure_not_an_allow(evaluator):
    broken = PolicyCode("broken", "package policies.broken\n\nimport rego.v1\n\ndeny := input.missing.field\n")
    (outcome,) = await evaluator.evaluate(Bundle.of([broken]), [("broken", {})])
    # `deny` is undefined, so the wrapper collects nothing: the engine reports an empty, valid result.
    # What must never happen is a silent allow from a *result* that is undefined:
    assert outcome.failure is None or outcome.failure.code == EVALUATION_UNDEFINED


async def test_policies_cannot_read_the_service_environment_or_print(evaluator, monkeypatch):
    monkeypatch.setenv("POLICY_SERVER_DATABASE_URL", "postgresql://user:secret@db/ps")
    leak = demo(
        "leak",
        'deny contains {"code": "env", "message": concat(",", object.keys(opa.runtime().env))} if true\n\n'
        'warn contains "printed" if print("to stdout")',
    )
    fresh = regopy(1)
    try:
        (outcome,) = await fresh.evaluate(Bundle.of([leak]), [("leak", {})])
        assert outcome.failure is None
        names = outcome.deny[0]["message"]
        assert "POLICY_SERVER_DATABASE_URL" not in names and "secret" not in names
    finally:
        await fresh.close()


async def test_parse_errors_are_located_by_line_and_column(workbench):
    code = PolicyCode("demo", "package policies.demo\n\nimport rego.v1\n\ndeny contains 1 if {\n\tinput.a ==\n}\n")
    problems = await workbench.check(code)
    assert [(p.file, p.line, p.code) for p in problems] == [("demo/policy.rego", 6, "rego_parse_error")]
    assert problems[0].column == 10 and "==" in problems[0].message


async def test_an_input_the_engine_cannot_receive_fails_closed_without_a_restart(evaluator):
    (outcome,) = await evaluator.evaluate(Bundle.of([GOOD]), [("good", {"p": 2**80})])
    assert outcome.failure is not None and outcome.failure.code == "evaluation_error"
    assert evaluator.pool.restarts == 0
    await assert_still_answers(evaluator)


async def test_regopy_loaded_first_keeps_no_memory_per_evaluation_and_grown_workers_are_still_recycled():
    """regopy 1.5.2 kept kilobytes per (input, query) — but only because aiohttp's frozenlist was loaded before it
    (the same symbol clash that crashed its time-zone builtins; policy_server/__init__.py loads regopy first).
    Measured both ways in fresh processes. Recycling stays as the safeguard: past the soft limit a worker is
    replaced between requests, its bundle compiled first."""
    bundle = Bundle.of([GOOD])
    probe = f"""
import sys
if sys.argv[1] == "frozenlist-first":
    import frozenlist  # what importing opa_client (aiohttp) first did
from policy_server.engine import Bundle, PolicyCode
from policy_server.engine._worker import _Engine
code = PolicyCode("good", {GOOD.source!r})
bundle = Bundle.of([code])
from policy_server.engine._protocol import Call, Compiled, EvaluateEach
engine = _Engine()
assert isinstance(engine.compile(bundle.compile_request()), Compiled)
document = {{"p": 2, "queue": [{{"name": f"prod.{{i}}", "phase": "Pending"}} for i in range(100)]}}
message = EvaluateEach(bundle.key, [Call(bundle.entrypoints["good"], document)])
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
for _ in range(200):
    engine.evaluate_each(message)
before = resident()
for _ in range(3000):
    engine.evaluate_each(message)
print(resident() - before)
"""

    def grown(order: str) -> int:
        # A fresh process: in this one, memory freed by earlier tests would be reused and hide the growth.
        done = subprocess.run([sys.executable, "-c", probe, order], capture_output=True, text=True, check=True)
        return int(done.stdout)

    assert grown("regopy-first") < 1024 * 1024, "regopy keeps memory per evaluation again"
    assert grown("frozenlist-first") > 3000 * 1024, "the load-order probe no longer shows the clash"

    evaluator = regopy(1, PoolLimits(recycle_bytes=1, recycle_check_every=1))  # any growth
    try:
        seen = set()
        queue = [{"name": f"prod.{i}", "phase": "Pending"} for i in range(100)]  # kilobytes kept per evaluation
        for n in range(8):
            (outcome,) = await evaluator.evaluate(bundle, [("good", {"p": n, "queue": queue})])
            assert outcome.failure is None
            assert bool(outcome.deny) == (n > 1)
            seen.update(evaluator.pool.pids)
            for _ in range(100):  # the replacement is ready before it serves
                if evaluator.pool.idle:
                    break
                await asyncio.sleep(0.05)
        assert evaluator.pool.recycled >= 3 and len(seen) >= 4
        assert evaluator.pool.restarts == 0
        # Replacements are forked from the zygote with the bundle already compiled.
        assert all(bundle.key in w.compiled and w.forked for w in evaluator.pool.workers())
    finally:
        await evaluator.close()


async def test_workers_are_forked_ready_and_a_crashed_one_is_replaced_by_a_fork():
    evaluator = regopy(2, PoolLimits(timeout_s=DEADLINE_S))
    try:
        bundle = Bundle.of([GOOD])
        await asyncio.gather(*(evaluator.evaluate(bundle, [("good", {"p": 2})]) for _ in range(4)))
        zygote = evaluator.pool.zygote()
        assert zygote is not None and zygote.alive
        for _ in range(100):  # the zygote learns the bundle once a worker compiled it
            zygote = evaluator.pool.zygote()
            if zygote is not None and bundle.key in zygote.compiled:
                break
            await asyncio.sleep(0.05)
        crash = demo("crash", 'deny contains "r" if regex.match(`^(a|b)*$`, input.s)')
        (outcome,) = await evaluator.evaluate(Bundle.of([crash]), [("crash", {"s": "ab" * 100_000})])
        assert outcome.failure is not None and outcome.failure.code in (ENGINE_CRASHED, EVALUATION_TIMEOUT)
        assert evaluator.pool.restarts == 1
        replaced = [w for w in evaluator.pool.workers() if bundle.key in w.compiled and len(w.compiled) == 1]
        assert replaced and all(w.forked for w in evaluator.pool.workers())
        started = time.monotonic()
        (outcome,) = await evaluator.evaluate(bundle, [("good", {"p": 2})])
        assert outcome.deny and time.monotonic() - started < 1
    finally:
        await evaluator.close()
    closed = evaluator.pool.zygote()
    assert closed is None or not closed.alive
    assert zygote is not None and not Path(f"/proc/{zygote.pid}").exists()  # the zygote process is gone


LIMIT = demo(
    "limit",
    'deny contains {"code": "over", "message": sprintf("%v > %v", [input.n, input.parameters.max])} if {\n'
    '\tinput.n > object.get(input.parameters, "max", 10)\n}',
)
STRICT = demo("strict", 'deny contains {"code": "strict", "message": "on"} if input.parameters.strict == true')


async def test_one_input_serves_every_policy_each_with_its_own_parameters(evaluator):
    """The active set compiles each policy's parameters in; a decision then builds its input once."""
    parameters = {"limit": {"max": 3}, "strict": {"strict": True}}
    bundle = Bundle.of([LIMIT, STRICT], parameters)
    assert set(bundle.preset) == {"limit", "strict"}
    assert bundle.key != Bundle.of([LIMIT, STRICT]).key != Bundle.of([LIMIT, STRICT], {"limit": {"max": 4}}).key

    def calls(n: int, limit: dict, strict: dict) -> list:
        return [("limit", {"n": n, "parameters": limit}), ("strict", {"n": n, "parameters": strict})]

    async def codes(n: int, limit: dict, strict: dict) -> list[list[str]]:
        outcomes = await evaluator.evaluate(bundle, calls(n, limit, strict))
        assert all(o.failure is None for o in outcomes), outcomes
        return [[d["code"] for d in o.deny] for o in outcomes]

    assert evaluator.preset_request(bundle, calls(5, {"max": 3}, {"strict": True}), None) is None
    from policy_server.engine._regopy import shared_document

    same = calls(5, {"max": 3}, {"strict": True})
    assert evaluator.preset_request(bundle, same, shared_document(same)) is not None
    assert await codes(5, {"max": 3}, {"strict": True}) == [["over"], ["strict"]]
    assert await codes(2, {"max": 3}, {"strict": True}) == [[], ["strict"]]
    # Parameters other than the compiled ones (an evaluation of a what-if) go the per-policy way.
    other = calls(5, {"max": 7}, {"strict": False})
    assert evaluator.preset_request(bundle, other, shared_document(other)) is None
    assert await codes(5, {"max": 7}, {"strict": False}) == [[], []]
    (message,) = (await evaluator.evaluate(bundle, calls(5, {"max": 3}, {"strict": True})))[0].deny
    assert message["message"] == "5 > 3"


async def test_a_policy_set_that_crashes_with_preset_parameters_is_answered_one_input_per_policy(evaluator):
    # A preset entrypoint that crashes regopy (a regex over a huge string), while the policy itself
    # answers: the decision is still answered, and the set is not tried that way again.
    bundle = Bundle.of([LIMIT], {"limit": {"max": 3}})
    wrapper = bundle.modules[1]
    crashing = wrapper.source.replace("\tvalue := result", "\tregex.match(`^(a|b)*$`, input.s)\n\tvalue := result")
    bundle = replace(bundle, modules=(bundle.modules[0], type(wrapper)(wrapper.name, crashing)), key="crashing-preset")
    call = [("limit", {"n": 5, "s": "ab" * 100_000, "parameters": {"max": 3}})]
    restarts = evaluator.pool.restarts
    (outcome,) = await evaluator.evaluate(bundle, call)
    assert outcome.failure is None and [d["code"] for d in outcome.deny] == ["over"]
    assert evaluator.presets_off == {"crashing-preset"}
    assert evaluator.pool.restarts == restarts + 1
    (outcome,) = await evaluator.evaluate(bundle, call)
    assert outcome.failure is None and evaluator.pool.restarts == restarts + 1


async def test_a_policy_that_asks_what_day_it_is_in_a_time_zone_is_answered(evaluator):
    # With aiohttp's frozenlist loaded before regopy, these builtins killed every worker ("free(): invalid
    # pointer"): policy_server/__init__.py loads regopy first. A freeze window depends on them.
    code = demo(
        "calendar",
        'deny contains {"code": "friday", "message": sprintf("%v %v", [day, clock])} if {\n'
        '\tday := time.weekday([input.now_ns, "Europe/Berlin"])\n'
        '\tclock := time.clock([input.now_ns, "Europe/Berlin"])\n'
        '\tday == "Friday"\n}',
    )
    (outcome,) = await evaluator.evaluate(Bundle.of([code]), [("calendar", {"now_ns": 1798761600000000000})])
    assert outcome.failure is None, outcome.failure
    assert outcome.deny == [{"code": "friday", "message": "Friday [1, 0, 0]"}]
