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

from policy_server.engine import (
    Bundle,
    Evaluator,
    PolicyCode,
    PolicyOutcome,
    Problem,
    TestOutcome,
    Workbench,
    function_clashes,
    package_of,
    parameters_problem,
)
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
class Written:
    """A revision written, and what it dropped that the previous one had."""

    revision: Revision
    warnings: list[str]


@dataclass(frozen=True, slots=True)
class ActiveSet:
    """Every active policy, compiled together."""

    version: int
    policies: tuple[ActivePolicy, ...]
    bundle: Bundle
    time_dependent: bool = False
    """Whether any policy may read the time (``now``, ``now_ns``, ``time.now_ns``): its verdicts then hold for
    a short while only; otherwise a verdict holds as long as the state and the policy set it was computed on."""


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
        parameters_schema=meta.get("parameters_schema"),
    )


def builtin_enabled(directory: Path) -> bool:
    """Whether a built-in policy is on by default (``"enabled": false`` in ``policy.json``: a library policy)."""
    meta_path = directory / "policy.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return meta.get("enabled", True) is not False


def check_draft_shape(policy_id: str, draft: RevisionDraft) -> list[Problem]:
    """Problems of a draft that need no engine: id, mode, scope, parameters, file names, a package."""
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
    points = draft.scope.get("points", ["start"])
    if not isinstance(points, list) or not points or not set(points) <= {"start", "admission"}:
        problems.append(Problem("invalid_scope", "scope.points must list `start` and/or `admission`"))
    if set(draft.scope) - {"namespaces", "stages", "points"}:
        problems.append(Problem("invalid_scope", "scope has only `namespaces`, `stages` and `points`"))
    if not isinstance(draft.parameters, dict):
        problems.append(Problem("invalid_parameters", "parameters must be a JSON object"))
    else:
        why = parameters_problem(draft.parameters)
        if why is not None:
            problems.append(Problem("invalid_parameters", f"parameters cannot be given to a Rego engine: {why}"))
        else:
            problems += schema_problems(draft.parameters, draft.parameters_schema)
    for name in draft.tests:
        if not TEST_FILE.match(name):
            problems.append(Problem("invalid_test_file", f"test file {name!r} must be named like `policy_test.rego`"))
    if package_of(draft.source) is None:
        problems.append(Problem("lint_package", "the module declares no package (package a.b.c)",
                                f"{policy_id}/policy.rego", 1, 1))  # fmt: skip
    return problems


def clash_problems(policy_id: str, source: str, others: dict[str, str]) -> list[Problem]:
    """A function of the draft that another active policy defines with another arity (regopy crashes on it)."""
    return [
        Problem(
            "lint_function_clash",
            f"function {c.head.name} takes {c.head.arity} argument(s) here and {c.other_arity} in policy "
            f"{c.other_policy}: the embedded engine (regopy) crashes evaluating two policies whose functions share "
            "a name with different arities, which would take every decision down; rename this function",
            f"{policy_id}/policy.rego",
            c.head.line,
            1,
        )
        for c in function_clashes(source, others)
    ]


class PolicyService:
    """Writes, tests, versions and evaluates policies."""

    def __init__(
        self,
        store: PolicyStore,
        engine: Evaluator,
        workbench: Workbench,
        *,
        builtins: Path | None = None,
        refresh_s: float = 1.0,
        audit: AccessStore | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.engine = engine
        """Answers decisions from the active set."""
        self.workbench = workbench
        """Checks, tests and tries what authors submit: never the decision engine's capacity."""
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
            written = await self.store.sync_builtin(directory.name, draft, enabled=builtin_enabled(directory))
            if written is not None:
                _log.info("built-in policy %s recorded as revision %d", directory.name, written.number)
        self._builtins_loaded = True
        self._active = None

    # --- writes ----------------------------------------------------------------------------------

    async def validate(self, policy_id: str, draft: RevisionDraft) -> tuple[list[Problem], list[TestOutcome]]:
        """Every problem of a draft (shape, the strict compile check, tests) and its test results."""
        problems = check_draft_shape(policy_id, draft)
        if any(p.code in ("invalid_policy_id", "lint_package") for p in problems):
            return problems, []
        code = PolicyCode(policy_id, draft.source, draft.tests)
        others = [p for p in (await self.active()).policies if p.id != policy_id]
        reserved = [p.code.package for p in others]
        problems += clash_problems(policy_id, draft.source, {p.id: p.code.source for p in others})
        compile_problems = await self.workbench.check(code, reserved=reserved)
        problems += compile_problems
        if compile_problems:
            return problems, []
        results = await self.workbench.run_tests(code)
        results += [replace(r, name=f"{r.name} (opa)") for r in await self.workbench.run_opa_tests(code) or []]
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

    async def checked(self, policy_id: str, draft: RevisionDraft) -> RevisionDraft:
        """A draft that passes the shape and strict compile checks (its tests are not run), else InvalidPolicy."""
        problems = check_draft_shape(policy_id, draft)
        if not problems:
            others = [p for p in (await self.active()).policies if p.id != policy_id]
            problems = clash_problems(policy_id, draft.source, {p.id: p.code.source for p in others})
            problems += await self.workbench.check(
                PolicyCode(policy_id, draft.source), reserved=[p.code.package for p in others]
            )
        if problems:
            raise InvalidPolicy(_summary(problems), errors=problems)
        return draft

    async def put(self, policy_id: str, draft: RevisionDraft, *, author: str, comment: str) -> Written:
        """Create or update a policy; the revision becomes active only if it is valid and its tests pass."""
        problems, _ = await self.validate(policy_id, draft)
        if problems:
            raise InvalidPolicy(_summary(problems), errors=problems)
        existing = await self.store.get(policy_id)
        previous = existing.active if existing is not None else None
        action = "create" if previous is None or previous.deleted else "update"
        revision = await self.store.add_revision(policy_id, draft, author=author, comment=comment, action=action)
        await self._record(previous, revision)
        self._active = None
        before = previous.draft if previous is not None and not previous.deleted else None
        return Written(revision, write_warnings(before, draft))

    async def patch(self, policy_id: str, changes: dict[str, Any], *, author: str, comment: str) -> Written:
        """A new revision with the active one's source and tests and ``changes`` merged in (RFC 7396 for
        ``parameters`` and ``scope``); checked and tested like any write."""
        policy = await self.store.get(policy_id)
        if policy is None or policy.active is None or policy.active.deleted:
            raise NotFound(f"policy {policy_id} does not exist (or is deleted: roll back or PUT it first)")
        draft = policy.active.draft
        updates: dict[str, Any] = {
            k: changes[k] for k in ("title", "description", "mode", "parameters_schema") if k in changes
        }
        if "scope" in changes:
            updates["scope"] = {**draft.scope, **changes["scope"]}
        if "parameters" in changes:
            updates["parameters"] = merge_patch(draft.parameters, changes["parameters"])
        return await self.put(policy_id, replace(draft, **updates), author=author, comment=comment)

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
        others = {p.id: p.code.source for p in (await self.active()).policies if p.id != policy_id}
        clashes = clash_problems(policy_id, draft.source, others)
        if clashes:
            raise InvalidPolicy(f"the built-in {policy_id} cannot be restored: {_summary(clashes)}", errors=clashes)
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
        on_opa = await self.workbench.run_opa_tests(code)
        return revision, await self.workbench.run_tests(code), on_opa

    # --- evaluation ------------------------------------------------------------------------------

    async def active(self, stored: int | None = None) -> ActiveSet:
        """The active set, rebuilt when the stored version moved: checked at most every ``refresh_s``, or at once
        when the caller has just read the ``stored`` version (a decision's probe does)."""

        def current() -> bool:
            if self._active is None:
                return False
            if stored is not None:
                return self._active.version == stored
            return time.monotonic() - self._checked_at < self.refresh_s

        if current():
            return self._active  # type: ignore[return-value]
        if not self._builtins_loaded:
            await self.load_builtins()
        async with self._lock:
            if current():
                return self._active  # type: ignore[return-value]
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
                timed = any(reads_time(p.code.source) for p in policies)
                self._active = ActiveSet(version, policies, bundle, timed)
            self._checked_at = time.monotonic()
            return self._active

    async def evaluate(self, document: dict[str, Any]) -> tuple[Verdict, list[PolicyOutcome]]:
        """Decide: the active policies in scope of the document, on the decision engine."""
        active = await self.active()
        return await _verdict(self.engine, active.bundle, _in_scope(active.policies, document), document)

    async def try_out(
        self,
        document: dict[str, Any],
        *,
        only: str | None = None,
        draft: tuple[str, RevisionDraft] | None = None,
    ) -> tuple[Verdict, list[PolicyOutcome]]:
        """Authoring: the active policies in scope (or one active policy, or a checked draft) on a document, on
        the authoring capacity. A draft must pass the strict check first, like any revision."""
        active = await self.active()
        if draft is not None:
            policy_id, content = draft
            problems = check_draft_shape(policy_id, content)
            code = PolicyCode(policy_id, content.source)
            if not problems:
                reserved = [p.code.package for p in active.policies if p.id != policy_id]
                problems = await self.workbench.check(code, reserved=reserved)
            if problems:
                raise InvalidPolicy(_summary(problems), errors=problems)
            selected = [ActivePolicy(policy_id, 0, content.mode, content.scope, content.parameters, code)]
            return await _verdict(
                self.workbench, Bundle.of([code], {policy_id: content.parameters}), selected, document
            )
        if only is not None:
            selected = [p for p in active.policies if p.id == only]
            if not selected:
                raise NotFound(f"policy {only} is not active")
        else:
            selected = _in_scope(active.policies, document)
        return await _verdict(self.workbench, active.bundle, selected, document)


def _in_scope(policies: tuple[ActivePolicy, ...], document: dict[str, Any]) -> list[ActivePolicy]:
    """The policies whose scope covers the document's namespace, Stage and point (start or admission)."""
    namespace = document.get("namespace")
    stage = (document.get("stage") or {}).get("name") or (document.get("promotion") or {}).get("stage")
    point = document.get("point") or "start"
    return [p for p in policies if in_scope(p.scope, namespace, stage, point)]


async def _verdict(
    evaluator: Evaluator | Workbench, bundle: Bundle, selected: list[ActivePolicy], document: dict[str, Any]
) -> tuple[Verdict, list[PolicyOutcome]]:
    """Each selected policy on the document with its own parameters, and their combined verdict."""
    calls = [(p.id, {**document, "parameters": p.parameters}) for p in selected]
    outcomes = await evaluator.evaluate(bundle, calls)
    refs = [PolicyRef(p.id, p.revision, p.mode) for p in selected]
    return aggregate(refs, outcomes, document), outcomes


def schema_problems(parameters: dict[str, Any], schema: dict[str, Any] | None) -> list[Problem]:
    """Parameters checked against the JSON Schema (2020-12) a policy declares (none declared: nothing)."""
    if schema is None:
        return []
    import jsonschema

    if not isinstance(schema, dict):
        return [Problem("invalid_parameters_schema", "parameters_schema must be a JSON Schema object")]
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [Problem("invalid_parameters_schema", f"parameters_schema is not a valid JSON Schema: {exc.message}")]
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for error in sorted(validator.iter_errors(parameters), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(parameters)"
        out.append(Problem("invalid_parameters", f"parameters.{where}: {error.message}"[:500]))
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch if patch is not None else {}
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def write_warnings(before: RevisionDraft | None, after: RevisionDraft) -> list[str]:
    """What a new revision drops that its predecessor had: tests, title, description, parameters, scope."""
    if before is None:
        return []
    out = []
    dropped = sorted(set(before.tests) - set(after.tests))
    if dropped:
        out.append(f"the new revision drops test files {', '.join(dropped)} of the previous one (send them in "
                   "`tests` to keep them)")  # fmt: skip
    for name in ("title", "description"):
        if getattr(before, name) and not getattr(after, name):
            out.append(f"the new revision has no {name}; the previous one had one")
    if before.parameters and not after.parameters:
        out.append("the new revision has no parameters; the previous one had " + ", ".join(sorted(before.parameters)))
    if before.scope != after.scope:
        out.append(f"the scope changed from {before.scope} to {after.scope}")
    return out


def _summary(problems: list[Problem]) -> str:
    first = problems[0]
    where = f"{first.file}:{first.line}:{first.column}: " if first.file and first.line else ""
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{where}{first.message}{more}"


_TIME = re.compile(r"\bnow(_ns)?\b")


def reads_time(source: str) -> bool:
    """Whether Rego ``source`` may depend on the time: it names ``now``/``now_ns`` (the input's time, in any
    spelling: ``input.now_ns``, ``inp.now``, ``input["now"]``) or ``time.now_ns()``, outside comments. A false
    positive only keeps its verdicts for less long."""
    code = "\n".join(line.split("#", 1)[0] if '"' not in line else line for line in source.splitlines())
    return bool(_TIME.search(code))
