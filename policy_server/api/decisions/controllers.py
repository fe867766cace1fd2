"""``/v1/decisions``: may this Promotion start? And why did it wait?"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Example, OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import Body, PathParameter, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from policy_server.api.auth import CONTROL, READ, SECURITY, PrincipalDep, current_principal
from policy_server.api.decisions.schemas import (
    ActionOutcomeView,
    DecisionPage,
    DecisionRequest,
    DecisionTestView,
    DecisionView,
    StageRef,
)
from policy_server.api.params import Since, Until, query_time
from policy_server.api.policies.controllers import actions as action_views
from policy_server.api.policies.controllers import reasons as reason_views
from policy_server.api.policies.schemas import ActionView, PolicyRefView, PromotionRef, ReasonView
from policy_server.api.problems import problem_responses
from policy_server.errors import InvalidInput, NotFound
from policy_server.kargo import format_time
from policy_server.service.access import Principal
from policy_server.service.decisions import Decision, DecisionService, Question
from policy_server.store import DecisionFilter, LoggedDecision

DecisionServiceDep = NamedDependency[DecisionService]
NDJSON = "application/x-ndjson"
_P6 = {"namespace": "kargo-demo", "name": "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"}


@dataclass
class _ListDecisionsOperation(Operation):
    """The list also streams NDJSON for export: document that media type on the 200 answer."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content:
            ok.content[NDJSON] = OpenAPIMediaType(
                schema=Schema(
                    type=OpenAPIType.STRING,
                    description="With `Accept: application/x-ndjson`: every matching decision (a DecisionView "
                    "with its `input`), one JSON document per line.",
                )
            )
            ok.description = "A page of decisions, or with `Accept: application/x-ndjson` the whole export."


class DecisionsController(Controller):
    """Decisions and the decision log."""

    path = "/v1/decisions"
    tags = ["decisions"]

    @post(
        "/",
        operation_id="Decide",
        opt=CONTROL,
        security=SECURITY,
        summary="May this Promotion start?",
        status_code=HTTP_200_OK,
        responses=problem_responses(422, 503),
    )
    async def decide(
        self,
        request: Request[Any, Any, Any],
        decision_service: DecisionServiceDep,
        data: Annotated[
            DecisionRequest,
            Body(
                examples=[
                    Example(summary="A recorded Promotion (P6 of kargo-demo)", value={"promotion": _P6}),
                    Example(summary="Claim the Stage when allowed", value={"promotion": _P6, "claim": True}),
                    Example(
                        summary="A Promotion not created yet",
                        value={
                            "stage": {"namespace": "kargo-demo", "name": "prod"},
                            "freight": "0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9",
                        },
                    ),
                ]
            ),
        ],
    ) -> DecisionView:
        """Evaluate the active policies on the recorded state of the Promotion's Stage and answer. Always 200 for a
        well-formed question: an unknown Promotion is denied (`promotion_unknown`), and engine failures deny with
        their reason code. Every decision is logged before it is answered.
        """
        # The caller is read here, not injected: one dependency per request keeps Litestar from resolving
        # them in a task group, which cost a tenth of a decision.
        principal = current_principal(request)
        question = _question(data, request, principal)
        principal.require_namespace(question.namespace)
        return decision_view(await decision_service.decide(question))

    @get(
        "/",
        operation_id="ListDecisions",
        opt=READ,
        security=SECURITY,
        summary="Browse the decision log",
        operation_class=_ListDecisionsOperation,
        responses=problem_responses(422, 503),
    )
    async def list_decisions(
        self,
        request: Request[Any, Any, Any],
        decision_service: DecisionServiceDep,
        principal: PrincipalDep,
        namespace: Annotated[
            str | None, QueryParameter(description="Kargo project.", examples=[Example(value="kargo-demo")])
        ] = None,
        stage: Annotated[
            str | None, QueryParameter(description="Stage name.", examples=[Example(value="prod")])
        ] = None,
        promotion: Annotated[str | None, QueryParameter(description="Promotion name.")] = None,
        allow: Annotated[bool | None, QueryParameter(description="Only allows (true) or denials (false).")] = None,
        policy: Annotated[
            str | None,
            QueryParameter(
                description="Only decisions where this policy gave a reason (deny, warning or dry run).",
                examples=[Example(value="block-while-verifying")],
            ),
        ] = None,
        code: Annotated[
            str | None,
            QueryParameter(
                description="Only decisions with this reason code.",
                examples=[Example(value="verification_in_progress")],
            ),
        ] = None,
        since: Since = None,
        until: Until = None,
        cursor: Annotated[
            str | None, QueryParameter(description="`next_cursor` of the previous page.", max_length=26)
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500, description="Page size.")] = 50,
    ) -> DecisionPage:
        """Decisions newest first, filtered; with `Accept: application/x-ndjson` all matches are streamed for
        export, each with its input document.
        """
        if namespace is not None:
            principal.require_namespace(namespace)
        visible = tuple(sorted(principal.namespaces)) if principal.namespaces is not None else None
        await decision_service.log.write_folds()  # this process's answers show their repeat counts at once
        where = DecisionFilter(
            namespace,
            stage,
            promotion,
            allow,
            policy,
            code,
            query_time(since, "since"),
            query_time(until, "until"),
            visible,
        )
        if NDJSON in (request.headers.get("accept") or ""):
            # The content type goes in the headers: Litestar lets the route's JSON type win over media_type.
            stream = Stream(_export(decision_service, where), media_type=NDJSON, headers={"content-type": NDJSON})
            return stream  # type: ignore[return-value]
        page = await decision_service.decisions.list(where, before=cursor, limit=limit + 1)
        more = len(page) > limit
        items = page[:limit]
        return DecisionPage([logged_view(d) for d in items], items[-1].id if more and items else None)

    @get(
        "/{decision_id:str}",
        operation_id="GetDecision",
        opt=READ,
        security=SECURITY,
        summary="Show one decision with its input",
        responses=problem_responses(404, 503),
    )
    async def get_decision(
        self,
        decision_service: DecisionServiceDep,
        principal: PrincipalDep,
        decision_id: Annotated[str, PathParameter(description="The decision's id (ULID).", max_length=26)],
    ) -> DecisionView:
        """Everything about one decision: the answer, the policy revisions, the caller, and the input evaluated."""
        found = await _visible(decision_service, principal, decision_id)
        view = logged_view(found)
        view.action_outcomes = [
            ActionOutcomeView(
                promotion=PromotionRef(namespace=o.namespace, name=o.promotion),
                action=o.action,
                outcome=o.outcome,
                detail=o.detail,
                at=format_time(o.at) or "",
            )
            for o in await decision_service.decisions.outcomes(decision_id)
        ]
        return view

    @get(
        "/{decision_id:str}/test",
        operation_id="GetDecisionTest",
        opt=READ,
        security=SECURITY,
        summary="Turn a decision into a Rego test for the policy that decided",
        responses=problem_responses(400, 404, 409, 503),
    )
    async def get_decision_test(
        self,
        decision_service: DecisionServiceDep,
        principal: PrincipalDep,
        decision_id: Annotated[str, PathParameter(description="The decision's id (ULID).", max_length=26)],
        policy: Annotated[
            str | None,
            QueryParameter(
                description="The policy to write the test for; by default the only one that denied (or took part).",
                max_length=63,
            ),
        ] = None,
    ) -> DecisionTestView:
        """A Rego test module holding the decision's exact input (with the deciding revision's parameters) and
        asserting the policy's outcome: its deny codes and the Promotions it aborted. Add it to the policy's
        tests with `PUT /v1/policies/{policy}` (`tests: {file: source}`): on-call turns a surprising decision
        into a regression test in one step. 409 when the decision kept no input or the policy failed to answer."""
        found = await _visible(decision_service, principal, decision_id)
        return DecisionTestView(**asdict(await decision_service.regression_test(found, policy)))


async def _visible(service: DecisionService, principal: Principal, decision_id: str) -> LoggedDecision:
    """A logged decision the caller may see, else 404 (or 403 for another namespace)."""
    await service.log.write_folds()
    found = await service.decisions.get(decision_id)
    if found is None:
        raise NotFound(f"decision {decision_id} does not exist (or was pruned)")
    principal.require_namespace(found.namespace)
    return found


async def _export(service: DecisionService, where: DecisionFilter) -> AsyncIterator[bytes]:
    encoder = msgspec.json.Encoder()
    async for decision in service.decisions.export(where):
        yield encoder.encode(logged_view(decision)) + b"\n"


def _question(data: DecisionRequest, request: Request[Any, Any, Any], principal: Principal) -> Question:
    agent = request.headers.get("user-agent") or (request.client.host if request.client else "")
    caller = f"{principal.name} ({agent})" if agent else principal.name
    if data.promotion is not None:
        if data.stage is not None or data.freight is not None:
            raise InvalidInput("ask about either `promotion`, or a prospective one with `stage` and `freight`")
        if not data.promotion.namespace or not data.promotion.name:
            raise InvalidInput("`promotion` needs `namespace` and `name`")
        return Question(data.promotion.namespace, promotion=data.promotion.name, claim=data.claim, caller=caller)
    if data.stage is None or not data.freight:
        raise InvalidInput("name a `promotion`, or a `stage` and the `freight` of a prospective Promotion")
    if data.claim:
        raise InvalidInput("a prospective Promotion cannot claim a Stage: claim once it is created")
    if not data.stage.namespace or not data.stage.name:
        raise InvalidInput("`stage` needs `namespace` and `name`")
    return Question(data.stage.namespace, stage=data.stage.name, freight=data.freight, caller=caller)


def decision_view(decision: Decision) -> DecisionView:
    """A fresh decision as answered."""
    question = decision.question
    verdict = decision.verdict
    return DecisionView(
        id=decision.id,
        allow=verdict.allow,
        promotion=PromotionRef(question.namespace, question.promotion) if question.promotion else None,
        prospective=question.prospective,
        stage=StageRef(question.namespace, decision.stage) if decision.stage else None,
        freight=decision.freight,
        evaluated_at=format_time(decision.evaluated_at) or "",
        reasons=reason_views(verdict.reasons),
        warnings=reason_views(verdict.warnings),
        dry_run=reason_views(verdict.dry_run),
        actions=action_views(verdict.actions, question.namespace),
        dry_run_actions=action_views(verdict.dry_run_actions, question.namespace),
        policies=[PolicyRefView(p.id, p.revision, p.mode) for p in verdict.policies],
        input_hash=decision.input_hash,
        duration_ms=decision.duration_ms,
        claimed=decision.claimed,
        repeat_count=decision.repeat_count,
        retry_after=latest_retry_after([r.retry_after for r in verdict.reasons]),
    )


def logged_view(d: LoggedDecision) -> DecisionView:
    """A decision as logged."""
    result = d.result
    return DecisionView(
        id=d.id,
        allow=d.allow,
        promotion=PromotionRef(d.namespace, d.promotion) if d.promotion else None,
        prospective=d.prospective,
        stage=StageRef(d.namespace, d.stage) if d.stage else None,
        freight=d.freight,
        evaluated_at=format_time(d.evaluated_at) or "",
        reasons=msgspec.convert(result.get("reasons", []), list[ReasonView]),
        warnings=msgspec.convert(result.get("warnings", []), list[ReasonView]),
        dry_run=msgspec.convert(result.get("dry_run", []), list[ReasonView]),
        actions=msgspec.convert(result.get("actions", []), list[ActionView]),
        dry_run_actions=msgspec.convert(result.get("dry_run_actions", []), list[ActionView]),
        policies=msgspec.convert(result.get("policies", []), list[PolicyRefView]),
        input_hash=d.input_hash,
        duration_ms=d.duration_ms,
        claimed=d.claimed,
        repeat_count=d.repeat_count,
        last_at=format_time(d.last_at),
        caller=d.caller,
        input=d.input,
        retry_after=latest_retry_after([r.get("retry_after") for r in result.get("reasons", [])]),
    )


def latest_retry_after(times: list[str | None]) -> str | None:
    """The latest of the reasons' ``retry_after`` times (as given: RFC 3339 strings, compared as instants)."""
    known: list[tuple[datetime, str]] = []
    for text in times:
        if text:
            try:
                known.append((datetime.fromisoformat(text.replace("Z", "+00:00")), text))
            except ValueError:
                continue
    return max(known)[1] if known else None
