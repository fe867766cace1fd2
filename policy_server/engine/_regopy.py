"""The embedded evaluator: regopy in killable worker processes."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from policy_server.engine._diagnostics import Problem
from policy_server.engine._model import (
    ENGINE_CRASHED,
    EVALUATION_ERROR,
    EVALUATION_UNDEFINED,
    INVALID_RESULT,
    Bundle,
    Failure,
    PolicyCode,
    PolicyOutcome,
    TestOutcome,
    package_of,
)
from policy_server.engine._pool import PoolLimits, WorkerFailure, WorkerPool

_log = logging.getLogger(__name__)
# An outcome the preset path gave that is asked again with one input per policy: a crash (see
# ``_no_preset``), or an error the policy may not raise on its own input.
_RETRY = {ENGINE_CRASHED, EVALUATION_ERROR, INVALID_RESULT}
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]*)\b(?=\s*(?:if\b|\{|:=|=))", re.M)


class RegopyEvaluator:
    """Evaluates bundles, checks modules and runs policy tests with regopy, contained in worker processes."""

    name = "regopy"

    def __init__(self, workers: int = 1, limits: PoolLimits | None = None) -> None:
        self.pool = WorkerPool(workers, limits)
        self._no_preset: set[str] = set()
        """Policy sets that crashed the engine with preset parameters."""

    async def start(self) -> None:
        """Start the worker processes."""
        await self.pool.start()

    async def close(self) -> None:
        """Stop the worker processes."""
        await self.pool.close()

    async def evaluate(self, bundle: Bundle, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[PolicyOutcome]:
        """Evaluate policies of ``bundle``, each on its own input; failures come back as outcomes, never raised."""
        if not calls:
            return []
        shared = shared_document(calls)
        preset = self._preset_message(bundle, calls, shared)
        if preset is not None:
            outcomes = await self._send(bundle, calls, preset)
            crashed = any(o.failure is not None and o.failure.code == ENGINE_CRASHED for o in outcomes)
            if crashed:
                # Never again for this policy set: its policies go back to one input each (below).
                self._no_preset.add(bundle.key)
                _log.warning("policy set %s crashed the engine with preset parameters; evaluating it "
                             "with one input per policy from now on", bundle.key)  # fmt: skip
            if not any(o.failure is not None and o.failure.code in _RETRY for o in outcomes):
                return outcomes
        if shared is None:
            message = {"op": "eval", "key": bundle.key, "calls": [(bundle.entrypoints[pid], doc) for pid, doc in calls]}
        else:
            entries = [(bundle.entrypoints[pid], doc["parameters"]) for pid, doc in calls]
            message = {"op": "eval", "key": bundle.key, "document": shared, "calls": entries}
        return await self._send(bundle, calls, message)

    def _preset_message(
        self, bundle: Bundle, calls: Sequence[tuple[str, dict[str, Any]]], shared: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """One input for the whole decision, when every policy is asked with the parameters it was compiled
        with (the active set: building the input is most of regopy's time, 3 policies → a third)."""
        if shared is None or bundle.key in self._no_preset:
            return None
        entries = []
        for pid, doc in calls:
            preset = bundle.preset.get(pid)
            if preset is None or preset[1] != doc["parameters"]:
                return None
            entries.append(preset[0])
        return {"op": "eval", "key": bundle.key, "preset": True, "document": {**shared, "parameters": {}},
                "calls": entries}  # fmt: skip

    async def _send(
        self, bundle: Bundle, calls: Sequence[tuple[str, dict[str, Any]]], message: dict[str, Any]
    ) -> list[PolicyOutcome]:
        try:
            reply = await self.pool.run(message, compile_message=bundle.compile_message())
        except WorkerFailure as exc:
            return [PolicyOutcome(pid, failure=Failure(exc.code, exc.message)) for pid, _ in calls]
        if not reply.get("ok"):
            detail = (
                "; ".join(p.get("message", "") for p in reply.get("problems", [])) or "the policy set is not usable"
            )
            return [PolicyOutcome(pid, failure=Failure(EVALUATION_ERROR, detail)) for pid, _ in calls]
        return [_outcome(pid, result) for (pid, _), result in zip(calls, reply["results"], strict=True)]

    async def compile_problems(self, modules: Sequence[tuple[str, str]]) -> list[Problem]:
        """Parse and compile errors of ``modules`` (empty when they compile)."""
        key = f"check-{time.monotonic_ns()}"
        message = {"op": "compile", "key": key, "modules": list(modules), "entrypoints": [], "query": "x := true"}
        try:
            reply = await self.pool.run(message, timeout_s=self.pool.limits.compile_timeout_s)
        except WorkerFailure as exc:
            return [Problem(exc.code, exc.message)]
        return [Problem(**p) for p in reply.get("problems", [])]

    async def run_tests(self, code: PolicyCode) -> list[TestOutcome]:
        """Run every ``test_*`` rule of the policy's test modules (like ``opa test``), with its line."""
        return [replace(r, line=_test_line(code, r.file, r.name)) for r in await self._run_tests(code)]

    async def _run_tests(self, code: PolicyCode) -> list[TestOutcome]:
        modules = [(m.name, m.source) for m in code.modules(with_tests=True)]
        tests = discover_tests(code)
        if not tests:
            return []
        queries = [f"data.{package}.{name}" for _, package, name in tests]
        started = time.perf_counter()
        try:
            reply = await self._query(modules, queries)
        except WorkerFailure:
            # Something crashed or hung: run each test alone (its file without the other tests) to find which.
            return [await self._run_one(code.policy_id, _only(modules, test), test) for test in tests]
        elapsed = (time.perf_counter() - started) * 1000 / len(tests)
        if not reply.get("ok"):
            problems = [Problem(**p) for p in reply.get("problems", [])]
            text = "; ".join(p.message for p in problems) or "the modules do not compile"
            return [TestOutcome(code.policy_id, name, file, "error", text) for file, _, name in tests]
        return [
            _test_outcome(code.policy_id, test, result, elapsed)
            for test, result in zip(tests, reply["results"], strict=True)
        ]

    async def query(self, modules: Sequence[tuple[str, str]], expression: str, document: Any) -> dict[str, Any]:
        """Evaluate one expression over ``modules`` (no bundle): the worker's raw outcome."""
        try:
            reply = await self._query(modules, [expression], document)
        except WorkerFailure as exc:
            return {"error_code": exc.code, "error_message": exc.message}
        if not reply.get("ok"):
            return {"error_code": "rego_parse_error", "error_message": str(reply.get("problems"))}
        return reply["results"][0]

    async def _run_one(self, policy_id: str, modules: list[tuple[str, str]], test: tuple[str, str, str]) -> TestOutcome:
        file, package, name = test
        started = time.perf_counter()
        try:
            reply = await self._query(modules, [f"data.{package}.{name}"])
        except WorkerFailure as exc:
            return TestOutcome(policy_id, name, file, "error", f"{exc.code}: {exc.message}")
        elapsed = (time.perf_counter() - started) * 1000
        if not reply.get("ok"):
            return TestOutcome(policy_id, name, file, "error", "the modules do not compile")
        return _test_outcome(policy_id, test, reply["results"][0], elapsed)

    async def _query(self, modules: list[tuple[str, str]], queries: list[str], document: Any = None) -> dict:
        message = {"op": "query", "modules": modules, "queries": queries, "input": document}
        return await self.pool.run(message, timeout_s=self.pool.limits.compile_timeout_s)


def shared_document(calls: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    """The document the calls share when they differ only in ``parameters`` (then it is sent once)."""
    first = calls[0][1]
    if "parameters" not in first:
        return None
    shared = {k: v for k, v in first.items() if k != "parameters"}
    for _, doc in calls[1:]:
        if len(doc) != len(first) or "parameters" not in doc or any(doc.get(k) is not v for k, v in shared.items()):
            return None
    return shared


def _only(modules: list[tuple[str, str]], test: tuple[str, str, str]) -> list[tuple[str, str]]:
    """``modules`` with every other ``test_*`` rule of the test's file removed."""
    file, _, keep = test
    out = []
    for name, source in modules:
        if name != file:
            out.append((name, source))
            continue
        blocks = _top_level_blocks(source)
        kept = [b for b in blocks if not (m := _TEST_RULE.match(b)) or m.group(1) == keep]
        out.append((name, "".join(kept)))
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


def _test_outcome(policy_id: str, test: tuple[str, str, str], result: dict[str, Any], ms: float) -> TestOutcome:
    file, _, name = test
    if result.get("error_code"):
        return TestOutcome(policy_id, name, file, "error", f"{result['error_code']}: {result.get('error_message')}", ms)
    if result.get("undefined"):
        return TestOutcome(policy_id, name, file, "fail", "undefined", ms)
    if result.get("value") is True:
        return TestOutcome(policy_id, name, file, "pass", None, ms)
    return TestOutcome(policy_id, name, file, "fail", f"got {result.get('value')!r}", ms)


def _outcome(policy_id: str, result: dict[str, Any]) -> PolicyOutcome:
    if result.get("error_code"):
        return PolicyOutcome(
            policy_id, failure=Failure(EVALUATION_ERROR, f"{result['error_code']}: {result.get('error_message')}")
        )
    if result.get("undefined"):
        return PolicyOutcome(policy_id, failure=Failure(EVALUATION_UNDEFINED, "the policy's result is undefined"))
    return outcome_from_value(policy_id, result.get("value"))


def outcome_from_value(policy_id: str, value: Any) -> PolicyOutcome:
    """Check a policy's ``{deny, warn, abort}`` value against the rule contract and normalise it."""
    if not isinstance(value, dict):
        return PolicyOutcome(policy_id, failure=Failure(INVALID_RESULT, f"expected an object, got {value!r:.100}"))
    try:
        deny = [_reason(policy_id, item) for item in value.get("deny") or []]
        warn = [_reason(policy_id, item) for item in value.get("warn") or []]
        abort = [_abort(item) for item in value.get("abort") or []]
    except ValueError as exc:
        return PolicyOutcome(policy_id, failure=Failure(INVALID_RESULT, str(exc)))
    key = lambda r: (r.get("code", ""), r.get("message", ""), r.get("promotion", ""))  # noqa: E731
    return PolicyOutcome(policy_id, sorted(deny, key=key), sorted(warn, key=key), sorted(abort, key=key))


def _reason(policy_id: str, item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"code": policy_id, "message": item}
    if isinstance(item, dict) and isinstance(item.get("code"), str):
        message = item.get("message")
        return {"code": item["code"], "message": message if isinstance(message, str) else str(message or "")}
    raise ValueError(f"a deny/warn entry must be a string or an object with a string code, got {item!r:.200}")


def _abort(item: Any) -> dict[str, Any]:
    if isinstance(item, dict) and isinstance(item.get("promotion"), str):
        reason = item.get("reason")
        return {"promotion": item["promotion"], "reason": reason if isinstance(reason, str) else str(reason or "")}
    raise ValueError(f"an abort entry must be an object with a string promotion, got {item!r:.200}")
