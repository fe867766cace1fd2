"""``/v1/policies`` and ``/v1/evaluate``: write, validate, test, version and try policies."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import Body, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK

from policy_server.api.auth import AUTHOR, READ, SECURITY, PrincipalDep
from policy_server.api.params import SettingsDep
from policy_server.api.policies.schemas import (
    ActionView,
    ChangeComment,
    EvaluateRequest,
    EvaluateResponse,
    Failure,
    OpaTestRun,
    PolicyPatch,
    PolicyRefView,
    PolicyResult,
    PolicySummary,
    PolicyView,
    PolicyWrite,
    PromotionRef,
    ReasonView,
    RevisionView,
    RollbackRequest,
    Scope,
    TestResult,
    TestRun,
)
from policy_server.api.problems import problem_responses
from policy_server.engine import PolicyOutcome, TestOutcome
from policy_server.errors import Conflict, FieldError, InvalidInput, NotFound, PayloadTooLarge
from policy_server.kargo import abort_patch, check_shape, format_time
from policy_server.service import AbortAction, PolicyService, builtin_schema
from policy_server.service.decisions import DecisionService
from policy_server.store import Policy, Revision, RevisionDraft

PolicyServiceDep = NamedDependency[PolicyService]
DecisionServiceDep = NamedDependency[DecisionService]
PolicyId = Annotated[
    str, PathParameter(description="Policy id (a DNS label).", examples=[Example(value="block-while-verifying")])
]


class PoliciesController(Controller):
    """Policies as code, with history."""

    path = "/v1/policies"
    tags = ["policies"]

    @get(
        "/",
        operation_id="ListPolicies",
        opt=READ,
        security=SECURITY,
        summary="List policies",
        responses=problem_responses(503),
    )
    async def list_policies(self, policy_service: PolicyServiceDep) -> list[PolicySummary]:
        """Every policy, built in or written through the API, with its active revision."""
        return [_summary(p) for p in await policy_service.store.list() if p.active is not None]

    @get(
        "/{policy_id:str}",
        operation_id="GetPolicy",
        opt=READ,
        security=SECURITY,
        summary="Show a policy",
        responses=problem_responses(404, 503),
    )
    async def get_policy(self, policy_service: PolicyServiceDep, policy_id: PolicyId) -> PolicyView:
        """A policy: source, tests, enforcement, scope, parameters and active revision."""
        return _view(await _existing(policy_service, policy_id))

    @put(
        "/{policy_id:str}",
        operation_id="PutPolicy",
        opt=AUTHOR,
        security=SECURITY,
        summary="Create or update a policy",
        status_code=HTTP_200_OK,
        responses=problem_responses(413, 422, 503),
    )
    async def put_policy(
        self,
        policy_service: PolicyServiceDep,
        decision_service: DecisionServiceDep,
        principal: PrincipalDep,
        settings: SettingsDep,
        policy_id: PolicyId,
        data: JSONBody[PolicyWrite],
    ) -> PolicyView:
        """Write a new revision. It is checked (parse, compile, lint, package) and its tests are run; it becomes
        active only if all of that passes. Otherwise the answer is 422 with **every** problem, each with
        `code`, `message`, `file`, `line` and `column`, and nothing changes. With `impact: {max_flips: N}` the
        revision is first replayed on the logged decisions of the window (`POST /v1/policies/{id}/impact`); if
        it would flip more than N of them the write is refused with 409 and the report in `impact`.
        """
        principal.require_unscoped("a policy")
        size = len(data.source.encode()) + sum(len(t.encode()) for t in data.tests.values())
        if size > settings.max_policy_bytes:
            raise PayloadTooLarge(
                f"the policy and its tests are {size} bytes, more than max_policy_bytes={settings.max_policy_bytes}",
                limit="max_policy_bytes",
            )
        draft = _draft(data)
        if data.impact is not None:
            await _impact_gate(policy_service, decision_service, principal, policy_id, draft, data.impact)
        written = await policy_service.put(policy_id, draft, author=principal.name, comment=data.comment)
        return _view(await _existing(policy_service, policy_id), written.warnings)

    @patch(
        "/{policy_id:str}",
        operation_id="PatchPolicy",
        opt=AUTHOR,
        security=SECURITY,
        summary="Change a policy's settings",
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 413, 422, 503),
    )
    async def patch_policy(
        self,
        policy_service: PolicyServiceDep,
        principal: PrincipalDep,
        policy_id: PolicyId,
        data: Annotated[
            PolicyPatch,
            Body(
                media_type="application/merge-patch+json",
                examples=[Example(value={"mode": "warn", "parameters": {"hold_unhealthy": True}, "comment": "soften"})],
            ),
        ],
    ) -> PolicyView:
        """Change mode, scope, parameters, title or description without resending the source (a JSON merge
        patch, RFC 7396: fields left out stay; a parameter set to `null` is removed). The new revision is
        checked and tested like any write, and audited.
        """
        principal.require_unscoped("a policy")
        changes = {
            name: value
            for name in ("title", "description", "mode", "scope", "parameters", "parameters_schema")
            if (value := getattr(data, name)) is not msgspec.UNSET
        }
        if "scope" in changes:
            changes["scope"] = {
                k: v for k in ("namespaces", "stages", "points") if (v := getattr(data.scope, k)) is not msgspec.UNSET
            }
        if not changes:
            raise InvalidInput("the patch changes nothing: give title, description, mode, scope or parameters")
        written = await policy_service.patch(policy_id, changes, author=principal.name, comment=data.comment)
        return _view(await _existing(policy_service, policy_id), written.warnings)

    @post(
        "/{policy_id:str}/rollback",
        operation_id="RollbackPolicy",
        opt=AUTHOR,
        security=SECURITY,
        summary="Roll a policy back to an earlier revision",
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 422, 503),
    )
    async def rollback(
        self,
        policy_service: PolicyServiceDep,
        principal: PrincipalDep,
        policy_id: PolicyId,
        data: JSONBody[RollbackRequest | None] = None,
    ) -> PolicyView:
        """Make a new revision equal to an old one (history is never rewritten)."""
        principal.require_unscoped("a policy")
        if data is None:
            raise InvalidInput(
                'say which revision to roll back to: {"revision": N} (GET .../revisions lists them)',
                errors=[FieldError("required", field="revision")],
            )
        await policy_service.rollback(policy_id, data.revision, author=principal.name, comment=data.comment)
        return _view(await _existing(policy_service, policy_id))

    @delete(
        "/{policy_id:str}",
        operation_id="DeletePolicy",
        opt=AUTHOR,
        security=SECURITY,
        summary="Delete (switch off) a policy",
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 409, 503),
    )
    async def delete_policy(
        self,
        policy_service: PolicyServiceDep,
        principal: PrincipalDep,
        policy_id: PolicyId,
        comment: Annotated[str, QueryParameter(description="Why (kept in the history).", max_length=1000)] = "",
    ) -> PolicyView:
        """Add a deleting revision: the policy stops being evaluated; its history stays, and a rollback or a
        new revision brings it back. Built-in policies are disabled this way (and come back with restore).
        """
        principal.require_unscoped("a policy")
        await policy_service.delete(policy_id, author=principal.name, comment=comment)
        return _view(await _existing(policy_service, policy_id))

    @post(
        "/{policy_id:str}/restore",
        operation_id="RestorePolicy",
        opt=AUTHOR,
        security=SECURITY,
        summary="Restore a built-in policy",
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 503),
    )
    async def restore(
        self,
        policy_service: PolicyServiceDep,
        principal: PrincipalDep,
        policy_id: PolicyId,
        data: JSONBody[ChangeComment | None] = None,
    ) -> PolicyView:
        """Make the version shipped in `policies/` active again (a new revision)."""
        comment = data.comment if data else ""
        principal.require_unscoped("a policy")
        await policy_service.restore(policy_id, author=principal.name, comment=comment)
        return _view(await _existing(policy_service, policy_id))

    @get(
        "/{policy_id:str}/revisions",
        operation_id="ListPolicyRevisions",
        opt=READ,
        security=SECURITY,
        summary="List a policy's revisions",
        responses=problem_responses(404, 503),
    )
    async def revisions(self, policy_service: PolicyServiceDep, policy_id: PolicyId) -> list[RevisionView]:
        """Every revision, newest first."""
        revisions = await policy_service.store.revisions(policy_id)
        if not revisions:
            raise NotFound(f"policy {policy_id} does not exist")
        return [_revision(r) for r in revisions]

    @get(
        "/{policy_id:str}/revisions/{number:int}",
        operation_id="GetPolicyRevision",
        opt=READ,
        security=SECURITY,
        summary="Show one revision",
        responses=problem_responses(404, 503),
    )
    async def revision(
        self,
        policy_service: PolicyServiceDep,
        policy_id: PolicyId,
        number: Annotated[
            int, PathParameter(description="Revision number.", ge=1, le=2**62, examples=[Example(value=1)])
        ],
    ) -> RevisionView:
        """One revision, with its source and tests."""
        revision = await policy_service.store.revision(policy_id, number)
        if revision is None:
            raise NotFound(f"policy {policy_id} has no revision {number}")
        return _revision(revision)

    @post(
        "/{policy_id:str}/test",
        operation_id="TestPolicy",
        opt=AUTHOR,
        security=SECURITY,
        summary="Run a policy's tests",
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 503),
    )
    async def test_policy(self, policy_service: PolicyServiceDep, policy_id: PolicyId) -> TestRun:
        """Run the `test_*` rules of the active revision; each passes, fails or errors with a message."""
        revision, results, on_opa = await policy_service.run_tests(policy_id)
        run = test_run(policy_id, revision.number, results)
        if on_opa is not None:
            opa = test_run(policy_id, revision.number, on_opa)
            run.opa = OpaTestRun(opa.passed, opa.total, opa.failed, opa.results)
        return run


class EvaluateController(Controller):
    """Try policies on an input document."""

    tags = ["policies"]

    @post(
        "/v1/evaluate",
        operation_id="Evaluate",
        opt=AUTHOR,
        security=SECURITY,
        summary="Evaluate policies on an input document",
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 422, 503),
    )
    async def evaluate(
        self,
        policy_service: PolicyServiceDep,
        principal: PrincipalDep,
        settings: SettingsDep,
        data: JSONBody[EvaluateRequest],
    ) -> EvaluateResponse:
        """Evaluate the active policies in scope (or one active policy, or an unsaved draft) on the input
        document given. Nothing is recorded. Failures of the engine fail closed: `allow` is false with a reason
        code such as `evaluation_timeout`.
        """
        if principal.namespaces is not None:
            principal.require_namespace(data.input.get("namespace"))
        size = len(msgspec.json.encode(data.input))
        if size > settings.max_input_bytes:
            raise PayloadTooLarge(
                f"the input is {size} bytes, more than max_input_bytes={settings.max_input_bytes}",
                limit="max_input_bytes",
            )
        shape = check_shape(data.input, settings.max_json_depth, settings.max_string_bytes)
        if shape is not None:
            raise InvalidInput(
                f"the input is {shape}", limit="max_json_depth" if "nested" in shape else "max_string_bytes"
            )
        started = time.perf_counter()
        draft = ("draft", _draft(data.draft)) if data.draft is not None else None
        verdict, outcomes = await policy_service.try_out(data.input, only=data.policy, draft=draft)
        namespace = str(data.input.get("namespace") or "")
        return EvaluateResponse(
            allow=verdict.allow,
            reasons=reasons(verdict.reasons),
            warnings=reasons(verdict.warnings),
            dry_run=reasons(verdict.dry_run),
            actions=actions(verdict.actions, namespace),
            policies=[PolicyRefView(p.id, p.revision, p.mode) for p in verdict.policies],
            results=[_result(o) for o in outcomes],
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    @get(
        "/v1/schemas/decision-input",
        operation_id="GetDecisionInputSchema",
        opt=READ,
        security=SECURITY,
        summary="The decision input document, as JSON Schema",
    )
    async def input_schema(self) -> dict[str, Any]:
        """The JSON Schema of the document policies see as `input` (described in `policies/README.md`)."""
        return builtin_schema()


def reasons(items: list[Any]) -> list[ReasonView]:
    """Reasons as API views."""
    return [ReasonView(r.policy, r.code, r.message, r.retry_after) for r in items]


def actions(items: list[AbortAction], namespace: str) -> list[ActionView]:
    """Abort actions with the merge patch that carries them out."""
    return [ActionView("abort", PromotionRef(namespace, a.promotion), a.policy, a.reason, abort_patch()) for a in items]


def test_run(policy_id: str, number: int, results: list[TestOutcome]) -> TestRun:
    """Test results as an API view."""
    failed = sum(1 for r in results if r.status != "pass")
    return TestRun(
        policy=policy_id,
        revision=number,
        passed=failed == 0,
        total=len(results),
        failed=failed,
        results=[TestResult(r.name, r.file, r.status, r.message, round(r.duration_ms, 3)) for r in results],  # type: ignore[arg-type]
    )


test_run.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _result(outcome: PolicyOutcome) -> PolicyResult:
    failure = Failure(outcome.failure.code, outcome.failure.message) if outcome.failure else None
    return PolicyResult(outcome.policy_id, outcome.deny, outcome.warn, outcome.abort, failure)


def _draft(data: PolicyWrite) -> RevisionDraft:
    return RevisionDraft(
        source=data.source,
        tests=dict(data.tests),
        title=data.title,
        description=data.description,
        mode=data.mode,
        scope={
            "namespaces": list(data.scope.namespaces),
            "stages": list(data.scope.stages),
            "points": list(data.scope.points),
        },
        parameters=dict(data.parameters),
        parameters_schema=data.parameters_schema,
    )


async def _existing(service: PolicyService, policy_id: str) -> Policy:
    policy = await service.store.get(policy_id)
    if policy is None or policy.active is None:
        raise NotFound(f"policy {policy_id} does not exist")
    return policy


def _revision(r: Revision) -> RevisionView:
    return RevisionView(
        policy=r.policy_id,
        number=r.number,
        created_at=format_time(r.created_at) or "",
        author=r.author,
        comment=r.comment,
        action=r.action,
        deleted=r.deleted,
        based_on=r.based_on,
        content_hash=r.content_hash,
        title=r.draft.title,
        description=r.draft.description,
        mode=r.draft.mode,
        scope=msgspec.convert(r.draft.scope, Scope),
        parameters=r.draft.parameters,
        source=r.draft.source,
        tests=r.draft.tests,
        parameters_schema=r.draft.parameters_schema,
    )


def _state(policy: Policy) -> str:
    return "deleted" if policy.active is None or policy.active.deleted else "active"


def _summary(p: Policy) -> PolicySummary:
    assert p.active is not None
    return PolicySummary(
        id=p.id,
        builtin=p.builtin,
        state=_state(p),  # type: ignore[arg-type]
        active_revision=p.active.number,
        revisions=p.revisions,
        title=p.active.draft.title,
        mode=p.active.draft.mode,
        scope=msgspec.convert(p.active.draft.scope, Scope),
        updated_at=format_time(p.updated_at) or "",
    )


def _view(p: Policy, warnings: list[str] | None = None) -> PolicyView:
    assert p.active is not None
    overridden = p.builtin and p.builtin_hash is not None and p.active.content_hash != p.builtin_hash
    return PolicyView(
        id=p.id,
        builtin=p.builtin,
        state=_state(p),  # type: ignore[arg-type]
        builtin_overridden=bool(overridden or (p.builtin and p.active.deleted)),
        revisions=p.revisions,
        active=_revision(p.active),
        warnings=warnings or [],
    )


async def _impact_gate(
    policy_service: PolicyService,
    decision_service: Any,
    principal: Any,
    policy_id: str,
    draft: RevisionDraft,
    gate: Any,
) -> None:
    """Refuse a write that would flip more past decisions than the gate allows (409 with the report)."""
    from policy_server.api.policies.impact import impact_view, question_for, run_impact
    from policy_server.service.impact import ImpactAnalysis

    checked = await policy_service.checked(policy_id, draft)
    question = question_for(
        policy_id, checked, principal, since=gate.since, until=None,
        max_decisions=gate.max_decisions, timeout_s=gate.timeout_s,
    )  # fmt: skip
    await decision_service.log.write_folds()
    report = await run_impact(ImpactAnalysis(decision_service.decisions, policy_service.workbench), question)
    if report.flips > gate.max_flips or not report.complete:
        why = (
            f"it would flip {report.flips} past decision(s), more than max_flips={gate.max_flips}"
            if report.flips > gate.max_flips
            else f"the impact analysis did not finish ({report.stopped}): raise its limits or narrow the window"
        )
        raise Conflict(
            f"revision refused: {why} (replayed {report.scanned.decisions} since {gate.since})",
            impact=msgspec.to_builtins(impact_view(report)),
        )
