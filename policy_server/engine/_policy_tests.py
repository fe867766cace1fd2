"""Policy unit tests: every ``test_*`` rule of a policy's test modules, run like ``opa test`` in a worker."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from policy_server.engine._model import PolicyCode, TestOutcome, package_of
from policy_server.engine._pool import WorkerFailure, WorkerPool
from policy_server.engine._protocol import Module, Outcome, Query, Rejected, Results

_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b(?=\s*(?:if\b|\{|:=|=))", re.M)


async def run_tests(pool: WorkerPool, code: PolicyCode) -> list[TestOutcome]:
    """Run every ``test_*`` rule of the policy's test modules (like ``opa test``), each with its line.

    A test module that does not compile makes every test an error; a crash or a hang is found by running
    each test alone (its file without the other tests), so one bad test does not hide the others.
    """
    modules = code.modules(with_tests=True)
    tests = discover_tests(code)
    if not tests:
        return []
    queries = [f"data.{package}.{name}" for _, package, name in tests]
    started = time.perf_counter()
    try:
        reply = await pool.ask(Query(modules, queries))
    except WorkerFailure:
        results = [await _run_one(pool, code.policy_id, _only(modules, test), test) for test in tests]
    else:
        elapsed = (time.perf_counter() - started) * 1000 / len(tests)
        results = _results(code.policy_id, tests, reply, elapsed)
    return [replace(r, line=_test_line(code, r.file, r.name)) for r in results]


def _results(policy_id: str, tests: list[tuple[str, str, str]], reply: object, elapsed: float) -> list[TestOutcome]:
    if isinstance(reply, Results):
        return [
            _test_outcome(policy_id, test, result, elapsed) for test, result in zip(tests, reply.results, strict=True)
        ]
    if isinstance(reply, Rejected):
        text = "; ".join(p.message for p in reply.problems) or "the modules do not compile"
    else:
        text = f"unexpected reply {type(reply).__name__}"
    return [TestOutcome(policy_id, name, file, "error", text) for file, _, name in tests]


async def _run_one(pool: WorkerPool, policy_id: str, modules: list[Module], test: tuple[str, str, str]) -> TestOutcome:
    file, package, name = test
    started = time.perf_counter()
    try:
        reply = await pool.ask(Query(modules, [f"data.{package}.{name}"]))
    except WorkerFailure as exc:
        return TestOutcome(policy_id, name, file, "error", f"{exc.code}: {exc.message}")
    return _results(policy_id, [test], reply, (time.perf_counter() - started) * 1000)[0]


def _only(modules: list[Module], test: tuple[str, str, str]) -> list[Module]:
    """``modules`` with every other ``test_*`` rule of the test's file removed."""
    file, _, keep = test
    out = []
    for module in modules:
        if module.name != file:
            out.append(module)
            continue
        blocks = _top_level_blocks(module.source)
        kept = [b for b in blocks if not (m := _TEST_RULE.match(b)) or m.group(1) == keep]
        out.append(Module(module.name, "".join(kept)))
    return out


def _top_level_blocks(source: str) -> list[str]:
    """Split a module at lines that start a new top-level statement (comments stick to the next one)."""
    blocks: list[str] = []
    current: list[str] = []
    for line in source.splitlines(keepends=True):
        starts = bool(line[:1].strip()) and line[0] not in "}])#"
        if starts and current and any(c[:1].strip() and c[0] != "#" for c in current):
            blocks.append("".join(current))
            current = []
        current.append(line)
    if current:
        blocks.append("".join(current))
    return blocks


def discover_tests(code: PolicyCode) -> list[tuple[str, str, str]]:
    """``(file, package, rule)`` for every ``test_*`` rule in the test modules, in file order."""
    return [(file, package, rule) for file, package, rule, _ in _tests_with_lines(code)]


def _test_line(code: PolicyCode, file: str, rule: str) -> int | None:
    for found_file, _, found_rule, line in _tests_with_lines(code):
        if found_file == file and found_rule == rule:
            return line
    return None


def _tests_with_lines(code: PolicyCode) -> list[tuple[str, str, str, int]]:
    found: list[tuple[str, str, str, int]] = []
    for name, text in sorted(code.tests.items()):
        package = package_of(text)
        if package is None:
            continue
        seen: set[str] = set()
        for match in _TEST_RULE.finditer(text):
            rule = match.group(1)
            if rule not in seen:
                seen.add(rule)
                found.append((f"{code.policy_id}/{name}", package, rule, text.count("\n", 0, match.start()) + 1))
    return found


def _test_outcome(policy_id: str, test: tuple[str, str, str], result: Outcome, ms: float) -> TestOutcome:
    file, _, name = test
    if result.error_code:
        return TestOutcome(policy_id, name, file, "error", f"{result.error_code}: {result.error_message}", ms)
    if result.undefined:
        return TestOutcome(policy_id, name, file, "fail", "undefined", ms)
    if result.value is True:
        return TestOutcome(policy_id, name, file, "pass", None, ms)
    return TestOutcome(policy_id, name, file, "fail", f"got {result.value!r}", ms)
