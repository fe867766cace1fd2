"""`POST /v1/policies/{id}/impact`: what a draft would have decided differently on the logged decisions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from policy_server.api.auth import AUTHOR, SECURITY, PrincipalDep
from policy_server.api.decisions.controllers import DecisionServiceDep
from policy_server.api.params import window_time
from policy_server.api.policies.controllers import PolicyId, PolicyServiceDep, _draft
from policy_server.api.policies.schemas import (
    FlipCount,
    FlipExample,
    FlipSide,
    ImpactRequest,
    ImpactView,
    StageFlips,
)
from policy_server.api.problems import problem_responses
from policy_server.errors import InvalidInput, NotFound
from policy_server.kargo import format_time
from policy_server.service import PolicyService
from policy_server.service.access import Principal
from policy_server.service.impact import KINDS, ImpactAnalysis, ImpactQuestion, ImpactReport, Progress
from policy_server.store import DecisionFilter, RevisionDraft

NDJSON = "application/x-ndjson"


async def resolve_draft(service: PolicyService, policy_id: str, data: ImpactRequest) -> RevisionDraft:
    """The draft to replay: the one given, or an existing revision; checked like a write (tests aside)."""
    if (data.draft is None) == (data.revision is None):
        raise InvalidInput("give either `draft` (a policy revision to try) or `revision` (an existing one)")
    if data.revision is not None:
        revision = await service.store.revision(policy_id, data.revision)
        if revision is None:
            raise NotFound(f"policy {policy_id} has no revision {data.revision}")
        return revision.draft
    assert data.draft is not None
    return await service.checked(policy_id, _draft(data.draft))


def question_for(
    policy_id: str,
    draft: RevisionDraft,
    principal: Principal,
    *,
    since: str,
    until: str | None,
    namespace: str | None = None,
    stage: str | None = None,
    max_decisions: int = 5_000,
    timeout_s: float = 60.0,
    examples: int = 3,
) -> ImpactQuestion:
    """The replay a caller may run: only the namespaces their token sees."""
    if namespace is not None:
        principal.require_namespace(namespace)
    now = datetime.now(UTC)
    visible = tuple(sorted(principal.namespaces)) if principal.namespaces is not None else None
    where = DecisionFilter(
        namespace=namespace,
        stage=stage,
        since=window_time(since, "since", now),
        until=window_time(until, "until", now),
        namespaces=visible,
    )
    return ImpactQuestion(policy_id, draft, where, max_decisions, timeout_s, examples)


async def run_impact(analysis: ImpactAnalysis, question: ImpactQuestion) -> ImpactReport:
    """The report (progress events dropped)."""
    async for event in analysis.run(question):
        if isinstance(event, ImpactReport):
            return event
    raise AssertionError("an impact analysis always ends with a report")


def impact_view(report: ImpactReport) -> ImpactView:
    def count(kind: str, counts: dict[str, Any]) -> FlipCount:
        return FlipCount(counts[kind].decisions, counts[kind].answers)

    return ImpactView(
        policy=report.policy,
        mode=report.mode,
        since=format_time(report.since),
        until=format_time(report.until),
        complete=report.complete,
        stopped=report.stopped,
        scanned=FlipCount(report.scanned.decisions, report.scanned.answers),
        without_input=report.without_input,
        draft_failures=report.draft_failures,
        flips=report.flips,
        allow_to_deny=count("allow_to_deny", report.counts),
        deny_to_allow=count("deny_to_allow", report.counts),
        code_changes=count("code_changes", report.counts),
        stages=[
            StageFlips(s.namespace, s.stage, *(count(k, s.counts) for k in KINDS))
            for s in sorted(report.stages.values(), key=lambda s: (s.namespace, s.stage or ""))
        ],
        examples={
            kind: [
                FlipExample(
                    id=e["id"],
                    link=f"/v1/decisions/{e['id']}",
                    namespace=e["namespace"],
                    stage=e["stage"],
                    promotion=e["promotion"],
                    repeat_count=e["repeat_count"],
                    before=FlipSide(**e["before"]),
                    after=FlipSide(**e["after"]),
                )
                for e in report.examples[kind]
            ]
            for kind in KINDS
        },
        elapsed_s=report.elapsed_s,
    )


class ImpactController(Controller):
    path = "/v1/policies"
    tags = ["policies"]

    @post(
        "/{policy_id:str}/impact",
        operation_id="PolicyImpact",
        opt=AUTHOR,
        security=SECURITY,
        summary="What a draft would have decided differently on past decisions",
        status_code=HTTP_200_OK,
        responses=problem_responses(404, 422, 503),
    )
    async def impact(
        self,
        request: Request[Any, Any, Any],
        policy_service: PolicyServiceDep,
        decision_service: DecisionServiceDep,
        principal: PrincipalDep,
        policy_id: PolicyId,
        data: JSONBody[ImpactRequest],
    ) -> ImpactView:
        """Replays the logged inputs of a window (default the last 7 days, newest first, up to `max_decisions`)
        with the draft (or an existing revision) in place of the policy's active revision, and counts the
        flips: allow→deny, deny→allow, and code changes, per namespace and Stage, with example decisions (each
        links to the logged decision). A folded run of identical answers is one decision with its repeats.
        Runs on the authoring capacity, never on the workers that answer decisions; a namespace-limited token
        replays only its namespaces. With `Accept: application/x-ndjson` progress lines stream
        (`{"type": "progress", ...}`) and the last line is the report (`{"type": "report", ...}`)."""
        draft = await resolve_draft(policy_service, policy_id, data)
        question = question_for(
            policy_id, draft, principal, since=data.since, until=data.until, namespace=data.namespace,
            stage=data.stage, max_decisions=data.max_decisions, timeout_s=data.timeout_s, examples=data.examples,
        )  # fmt: skip
        await decision_service.log.write_folds()  # the repeat counts of this process's answers so far
        analysis = ImpactAnalysis(decision_service.decisions, policy_service.workbench)
        if NDJSON in (request.headers.get("accept") or ""):
            return Stream(_stream(analysis, question), media_type=NDJSON, headers={"content-type": NDJSON})  # type: ignore[return-value]
        return impact_view(await run_impact(analysis, question))


async def _stream(analysis: ImpactAnalysis, question: ImpactQuestion) -> AsyncIterator[bytes]:
    encoder = msgspec.json.Encoder()
    async for event in analysis.run(question):
        if isinstance(event, Progress):
            line = {"type": "progress", "scanned": event.scanned, "flips": event.flips, "elapsed_s": event.elapsed_s}
        else:
            line = {"type": "report", **msgspec.to_builtins(impact_view(event))}
        yield encoder.encode(line) + b"\n"
