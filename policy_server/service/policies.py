"""Policy management: validation, revisions, built-ins, the active set, and evaluation of input documents."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from policy_server.engine import Bundle, Evaluator, OpaCli, PolicyCode, PolicyOutcome, Problem, TestOutcome
from policy_server.engine._lint import lint
from policy_server.errors import Conflict, InvalidPolicy, NotFound
from policy_server.service.verdict import MODES, PolicyRef, Verdict, aggregate, in_scope
from policy_server.store import AccessStore, PolicyStore, Revision, RevisionDraft

_log = logging.getLogger("policy_server.policies")
POLICY_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
TEST_FILE = re.compile(r"^[A-Za-z0-9_.-]+_test\.rego$")


@dataclass(frozen=True, slots=True)
class ActivePolicy:
    """An active revision, ready to evaluate."""

    id: str
    revision: int
    mode: str
    scope: dict[str, list[str]]
    parameters: dict[str, Any]
    code: PolicyCode


@dataclass(frozen=True, slots=True)
class ActiveSet:
    """Every active policy, compiled together."""

    version: int
    policies: tuple[ActivePolicy, ...]
    bundle: Bundle


def builtin_dir() -> Path:
    """The ``policies/`` folder beside the package."""
    return Path(__file__).resolve().parents[2] / "policies"


@functools.cache
def builtin_schema() -> dict[str, Any]:
    """The JSON Schema of the decision input document (``policies/input.schema.json``)."""
    return json.loads((builtin_dir() / "input.schema.json").read_text())


def read_policy_dir(directory: Path) -> RevisionDraft:
    """A policy folder: ``policy.rego``, ``*_test.rego`` and ``policy.json`` (title, mode, scope, parameters)."""
    meta: dict[str, Any] = {}
    if (directory / "policy.json").is_file():
        meta = json.loads((directory / "policy.json").read_text())
    return RevisionDraft(
        source=(directory / "policy.rego").read_text(),
        tests={f.name: f.read_text() for f in sorted(directory.glob("*_test.rego"))},
        title=meta.get("title", ""),
        description=meta.get("description", ""),
        mode=meta.get("mode", "enforce"),
        scope=meta.get("scope") or {"namespaces": ["*"], "stages": ["*"]},
        parameters=meta.get("parameters") or {},
    )


def check_draft_shape(policy_id: str, draft: RevisionDraft) -> list[Problem]:
    """Problems of a draft that need no engine: id, mode, scope, parameters, file names, lint."""
    problems: list[Problem] = []
    if not POLICY_ID.match(policy_id):
        problems.append(
            Problem("invalid_policy_id", "a policy id is 1-63 lower-case letters, digits and dashes (like a DNS label)")
        )
    if draft.mode not in MODES:
        problems.append(Problem("invalid_mode", f"mode must be one of {', '.join(MODES)}, got {draft.mode!r}"))
    for key in ("namespaces", "stages"):
        patterns = draft.scope.get(key, ["*"])
        if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
            problems.append(Problem("invalid_scope", f"scope.{key} must be a list of glob patterns"))
    if set(draft.scope) - {"namespaces", "stages"}:
        problems.append(Problem("invalid_scope", "scope has only `namespaces` and `stages`"))
    if not isinstance(draft.parameters, dict):
        problems.append(Problem("invalid_parameters", "parameters must be a JSON object"))
    for name in draft.tests:
        if not TEST_FILE.match(name):
            problems.append(Problem("invalid_test_file", f"test file {name!r} must be named like `policy_test.rego`"))
    code = PolicyCode(policy_id, draft.source, draft.tests)
    files = {m.name: m.source for m in code.modules(with_tests=True)}
    problems += lint(files, policy_file=code.filename)
    return problems


class PolicyService:
    """Writes, tests, versions and evaluates policies."""

    def __init__(
        self,
        store: PolicyStore,
        engine: Evaluator,
        *,
        builtins: Path | None = None,
        refresh_s: float = 1.0,
        opa_cli: OpaCli | None = None,
        audit: AccessStore | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.engine = engine
        self.opa_cli = opa_cli
        self.builtins_path = builtins if builtins is not None else builtin_dir()
        self.builtins: dict[str, RevisionDraft] = {}
        self.refresh_s = refresh_s
        self._active: ActiveSet | None = None
        self._checked_at = 0.0
        self._lock = asyncio.Lock()
        self._builtins_loaded = False

    # --- built-ins -------------------------------------------------------------------------------

    async def load_builtins(self) -> None:
        """Read ``policies/`` and record each built-in policy that is new or changed (see PolicyStore)."""
        if not self.builtins_path.is_dir():
            _log.warning("no built-in policies: %s is not a directory", self.builtins_path)
            return
        for directory in sorted(self.builtins_path.iterdir()):
            if not (directory / "policy.rego").is_file():
                continue
            draft = read_policy_dir(directory)
            problems = check_draft_shape(directory.name, draft)
            if problems:
                raise InvalidPolicy(f"built-in policy {directory.name} is invalid", errors=problems)
            self.builtins[directory.name] = draft
            written = await self.store.sync_builtin(directory.name, draft)
            if written is not None:
                _log.info("built-in policy %s recorded as revision %d", directory.name, written.number)
        self._builtins_loaded = True
        self._active = None

    # --- writes ----------------------------------------------------------------------------------

    async def validate(self, policy_id: str, draft: RevisionDraft) -> tuple[list[Problem], list[TestOutcome]]:
        """Every problem of a draft (shape, lint, compile, package clash, tests) and its test results."""
        problems = check_draft_shape(policy_id, draft)
        if any(p.code in ("invalid_policy_id", "lint_package") for p in problems):
            return problems, []
        code = PolicyCode(policy_id, draft.source, draft.tests)
        compile_problems = await self.engine.compile_problems([(m.name, m.source) for m in code.modules(True)])
        problems += compile_problems
        for other in (await self.active()).policies:
            if other.id != policy_id and other.code.package == code.package:
                problems.append(
                    Problem(
                        "package_in_use",
                        f"package {code.package} belongs to policy {other.id}: each policy needs its own",
                        code.filename,
                        1,
                        1,
                    )
                )
        if self.opa_cli is not None:
            problems += await self.opa_cli.check(code)
        if compile_problems:
            return problems, []
        results = await self.engine.run_tests(code)
        if self.opa_cli is not None:
            results += [replace(r, name=f"{r.name} (opa)") for r in await self.opa_cli.test(code)]
        for result in results:
            if result.status != "pass":
                problems.append(
                    Problem(
                        f"test_{result.status}",
                        f"{result.name}: {result.message or result.status}",
                        result.file,
                        result.line,
                        1 if result.line else None,
                    )
                )
        return problems, results

    async def put(self, policy_id: str, draft: RevisionDraft, *, author: str, comment: str) -> Revision:
        """Create or update a policy; the revision becomes active only if it is valid and its tests pass."""
        problems, _ = await self.validate(policy_id, draft)
        if problems:
            raise InvalidPolicy(_summary(problems), errors=problems)
        existing = await self.store.get(policy_id)
        action = "create" if existing is None or existing.active is None else "update"
        if existing is not None and existing.active is not None and existing.active.deleted:
            action = "create"
        revision = await self.store.add_revision(policy_id, draft, author=author, comment=comment, action=action)
        await self._record(existing.active if existing else None, revision)
        self._active = None
        return revision

    async def rollback(self, policy_id: str, to: int, *, author: str, comment: str) -> Revision:
        """A new revision equal to revision ``to`` (its tests must still pass)."""
        old = await self.store.revision(policy_id, to)
        current = await self.store.get(policy_id)
        if old is None:
            raise NotFound(f"policy {policy_id} has no revision {to}")
        if old.deleted:
            return await self.delete(policy_id, author=author, comment=comment or f"rollback to {to}")
        problems, _ = await self.validate(policy_id, old.draft)
        if problems:
            raise InvalidPolicy(f"revision {to} is no longer valid: {_summary(problems)}", errors=problems)
        revision = await self.store.add_revision(
            policy_id, old.draft, author=author, comment=comment or f"rollback to revision {to}",
            action="rollback", based_on=to,
        )  # fmt: skip
        await self._record(current.active if current else None, revision)
        self._active = None
        return revision

    async def delete(self, policy_id: str, *, author: str, comment: str) -> Revision:
        """Switch a policy off with a deleting revision; its history stays."""
        policy = await self.store.get(policy_id)
        if policy is None or policy.active is None:
            raise NotFound(f"policy {policy_id} does not exist")
        if policy.active.deleted:
            raise Conflict(f"policy {policy_id} is already deleted")
        revision = await self.store.add_revision(
            policy_id, policy.active.draft, author=author, comment=comment or "deleted", action="delete", deleted=True
        )
        await self._record(policy.active, revision)
        self._active = None
        return revision

    async def restore(self, policy_id: str, *, author: str, comment: str) -> Revision:
        """Bring a built-in policy back to the version shipped in ``policies/``."""
        draft = self.builtins.get(policy_id)
        if draft is None:
            raise NotFound(f"{policy_id} is not a built-in policy")
        before = await self.store.get(policy_id)
        revision = await self.store.add_revision(
            policy_id, draft, author=author, comment=comment or "restored the built-in version", action="restore"
        )
        await self._record(before.active if before else None, revision)
        self._active = None
        return revision

    async def _record(self, before: Revision | None, after: Revision) -> None:
        """Audit a policy change: who, which revisions, and whether enforcement or scope changed."""
        if self.audit is None:
            return
        detail: dict[str, Any] = {"comment": after.comment, "mode": after.draft.mode, "scope": after.draft.scope}
        if before is not None:
            detail["mode_changed"] = before.draft.mode != after.draft.mode
            detail["scope_changed"] = before.draft.scope != after.draft.scope
            detail["source_changed"] = before.draft.source != after.draft.source
            detail["parameters_changed"] = before.draft.parameters != after.draft.parameters
        await self.audit.record(
            after.author,
            f"policy.{after.action}",
            f"policy/{after.policy_id}",
            str(before.number) if before is not None else None,
            str(after.number),
            detail,
        )

    async def run_tests(
        self, policy_id: str, number: int | None = None
    ) -> tuple[Revision, list[TestOutcome], list[TestOutcome] | None]:
        """Run the tests of a revision (default: the active one): on regopy, and on OPA when configured."""
        policy = await self.store.get(policy_id)
        if policy is None or policy.active is None:
            raise NotFound(f"policy {policy_id} does not exist")
        revision = policy.active if number is None else await self.store.revision(policy_id, number)
        if revision is None:
            raise NotFound(f"policy {policy_id} has no revision {number}")
        code = PolicyCode(policy_id, revision.draft.source, revision.draft.tests)
        on_opa = await self.opa_cli.test(code) if self.opa_cli is not None else None
        return revision, await self.engine.run_tests(code), on_opa

    # --- evaluation ------------------------------------------------------------------------------

    async def active(self) -> ActiveSet:
        """The active set, rebuilt when the stored version moved (checked at most every ``refresh_s``)."""
        now = time.monotonic()
        if self._active is not None and now - self._checked_at < self.refresh_s:
            return self._active
        if not self._builtins_loaded:
            await self.load_builtins()
        async with self._lock:
            if self._active is not None and time.monotonic() - self._checked_at < self.refresh_s:
                return self._active
            version = await self.store.version()
            if self._active is None or self._active.version != version:
                version, revisions = await self.store.active_set()
                policies = tuple(
                    ActivePolicy(
                        r.policy_id,
                        r.number,
                        r.draft.mode,
                        r.draft.scope,
                        r.draft.parameters,
                        PolicyCode(r.policy_id, r.draft.source, r.draft.tests),
                    )
                    for r in revisions
                )
                bundle = Bundle.of([p.code for p in policies], {p.id: p.parameters for p in policies})
                self._active = ActiveSet(version, policies, bundle)
            self._checked_at = time.monotonic()
            return self._active

    async def evaluate(
        self,
        document: dict[str, Any],
        *,
        only: str | None = None,
        draft: tuple[str, RevisionDraft] | None = None,
    ) -> tuple[Verdict, list[PolicyOutcome]]:
        """Evaluate the active policies in scope (or one active policy, or a draft) on an input document."""
        if draft is not None:
            policy_id, content = draft
            problems = check_draft_shape(policy_id, content)
            if problems:
                raise InvalidPolicy(_summary(problems), errors=problems)
            selected = [ActivePolicy(policy_id, 0, content.mode, content.scope, content.parameters,
                                     PolicyCode(policy_id, content.source))]  # fmt: skip
            bundle = Bundle.of([selected[0].code])
        else:
            active = await self.active()
            bundle = active.bundle
            if only is not None:
                selected = [p for p in active.policies if p.id == only]
                if not selected:
                    raise NotFound(f"policy {only} is not active")
            else:
                namespace = document.get("namespace")
                stage = (document.get("stage") or {}).get("name") or (document.get("promotion") or {}).get("stage")
                selected = [p for p in active.policies if in_scope(p.scope, namespace, stage)]
        calls = [(p.id, {**document, "parameters": p.parameters}) for p in selected]
        outcomes = await self.engine.evaluate(bundle, calls)
        refs = [PolicyRef(p.id, p.revision, p.mode) for p in selected]
        return aggregate(refs, outcomes, document), outcomes


def _summary(problems: list[Problem]) -> str:
    first = problems[0]
    where = f"{first.file}:{first.line}:{first.column}: " if first.file and first.line else ""
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{where}{first.message}{more}"
