"""Authoring capacity: strict checks, policy tests and draft evaluations, walled off from decisions.

Everything a policy author submits runs here, on worker processes of its own (their own compiled-bundle
slots, a lower CPU priority, their own deadlines) admitted through a bounded queue: an author can make
authoring slow or busy (429), never decisions. The decision engine never compiles a draft.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from policy_server import metrics
from policy_server.engine._codes import ENGINE_CRASHED
from policy_server.engine._diagnostics import Problem
from policy_server.engine._model import Bundle, EngineStatus, PolicyCall, PolicyCode, PolicyOutcome, TestOutcome
from policy_server.engine._opa_cli import OpaCli
from policy_server.engine._policy_tests import run_tests
from policy_server.engine._pool import WorkerFailure, WorkerPool
from policy_server.engine._protocol import Check, Compiled, Failed, Module, Rejected
from policy_server.engine._regopy import RegopyEvaluator
from policy_server.errors import AuthoringBusy


class Workbench:
    """Checks, tests and tries policies for authors, on a pool that decisions never use."""

    def __init__(self, pool: WorkerPool, *, opa_cli: OpaCli | None = None, max_waiting: int = 4) -> None:
        self.pool = pool
        self.opa_cli = opa_cli
        self.max_waiting = max(0, max_waiting)
        self._evaluator = RegopyEvaluator(pool)
        self._in_flight = 0

    async def start(self) -> None:
        """Start the authoring workers now (otherwise the first authoring request starts them)."""
        await self.pool.start()

    async def close(self) -> None:
        """Stop the authoring workers."""
        await self.pool.close()

    async def status(self) -> EngineStatus:
        return EngineStatus("authoring", True, f"{self.pool.size} workers, {self._in_flight} requests in flight")

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """One authoring request; past the workers and ``max_waiting`` waiting ones, ``AuthoringBusy`` (429)."""
        if self._in_flight >= self.pool.size + self.max_waiting:
            metrics.AUTHORING_REJECTED.inc()
            raise AuthoringBusy(
                f"authoring capacity is busy ({self._in_flight} checks, tests or drafts in flight): try again",
                retry_after=1,
            )
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    async def check(self, code: PolicyCode, *, reserved: Sequence[str] = ()) -> list[Problem]:
        """Every problem the strict compile check finds in a policy's modules (and OPA's, with its binary)."""
        async with self.admitted():
            problems = await self._check(code.modules(with_tests=True), [code.filename], reserved)
            if self.opa_cli is not None:
                problems += await self.opa_cli.check(code.modules(with_tests=True))
            return problems

    async def check_files(self, files: dict[str, str], policy_files: Sequence[str]) -> list[Problem]:
        """The same check on loose files (``policies check``)."""
        modules = [Module(name, source) for name, source in files.items()]
        async with self.admitted():
            problems = await self._check(modules, list(policy_files), ())
            if self.opa_cli is not None:
                problems += await self.opa_cli.check(modules)
            return problems

    async def _check(self, modules: list[Module], policy_files: list[str], reserved: Sequence[str]) -> list[Problem]:
        first = policy_files[0] if policy_files else modules[0].name if modules else None
        try:
            reply = await self.pool.ask(Check(modules, policy_files, list(reserved)))
        except WorkerFailure as exc:
            if exc.code == ENGINE_CRASHED:
                why = (
                    "the embedded Rego engine (regopy) crashed compiling this policy, so it could never be "
                    "evaluated (a known regopy defect, e.g. `with input as` over rules that call builtins)"
                )
                return [Problem(exc.code, why, first, 1, 1)]
            return [Problem(exc.code, f"the policy could not be checked: {exc.message}", first, 1, 1)]
        match reply:
            case Compiled():
                return []
            case Rejected(problems=problems):
                return [Problem(p.code, p.message, p.file, p.line, p.column) for p in problems]
            case Failed(message=message):
                return [Problem("check_failed", f"the policy could not be checked: {message}", first, 1, 1)]
            case _:
                return [Problem("check_failed", f"unexpected reply {type(reply).__name__}", first, 1, 1)]

    async def run_tests(self, code: PolicyCode) -> list[TestOutcome]:
        """The policy's ``test_*`` rules on regopy."""
        async with self.admitted():
            return await run_tests(self.pool, code)

    async def run_opa_tests(self, code: PolicyCode) -> list[TestOutcome] | None:
        """The same tests on OPA (``opa test``), when an OPA binary is configured."""
        if self.opa_cli is None:
            return None
        async with self.admitted():
            return await self.opa_cli.test(code)

    async def evaluate(self, bundle: Bundle, calls: Sequence[PolicyCall]) -> list[PolicyOutcome]:
        """Evaluate a draft (or the active set, for ``/v1/evaluate``) on authoring workers."""
        async with self.admitted():
            return await self._evaluator.evaluate(bundle, calls)
