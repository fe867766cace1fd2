"""``/v1/namespaces/{namespace}/...``: recorded Stages with their queues, and Promotions."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter

from policy_server.api.auth import READ, SECURITY, PrincipalDep
from policy_server.api.params import Namespace, SettingsDep, StateStoreDep
from policy_server.api.problems import problem_responses
from policy_server.api.stages.schemas import (
    CurrentFreight,
    KargoVerificationRecord,
    NamespaceView,
    PromotionSummary,
    PromotionView,
    StageSummaryView,
    StageView,
    VerificationRun,
)
from policy_server.errors import NotFound
from policy_server.kargo import PromotionFacts, Verification, format_time
from policy_server.store import StageState


class NamespacesController(Controller):
    """The namespaces (Kargo projects) state was recorded for."""

    path = "/v1/namespaces"
    tags = ["state"]

    @get(
        "/",
        operation_id="ListNamespaces",
        opt=READ,
        security=SECURITY,
        responses=problem_responses(503),
        summary="List the namespaces with recorded Stages (those the token may see)",
    )
    async def list_namespaces(self, state_store: StateStoreDep, principal: PrincipalDep) -> list[NamespaceView]:
        """List the namespaces (Kargo projects) with recorded Stages, with how many; a token limited to
        namespaces sees those only."""
        listed = await state_store.namespaces(principal.namespaces)
        return [NamespaceView(name=name, stages=count) for name, count in listed]


class StagesController(Controller):
    """Recorded Stages and Promotions."""

    path = "/v1/namespaces/{namespace:str}"
    tags = ["state"]

    @get(
        "/stages",
        operation_id="ListStages",
        opt=READ,
        security=SECURITY,
        responses=problem_responses(503),
        summary="List the recorded Stages of a namespace with the length of their queues",
    )
    async def list_stages(
        self, state_store: StateStoreDep, principal: PrincipalDep, namespace: Namespace
    ) -> list[StageSummaryView]:
        """List the recorded Stages of a namespace with the length of their queues."""
        principal.require_namespace(namespace)
        return [
            StageSummaryView(
                namespace=s.namespace,
                name=s.name,
                resource_version=s.resource_version,
                has_verification=bool(s.has_verification),
                health=s.health_status,
                current_promotion=s.current_promotion,
                last_promotion=s.last_promotion,
                queued=s.queued,
            )
            for s in await state_store.list_stages(namespace)
        ]

    @get(
        "/stages/{name:str}",
        operation_id="GetStage",
        opt=READ,
        security=SECURITY,
        responses=problem_responses(404, 503),
        summary="Show a Stage: its queue in Kargo's order, recent Promotions, current Freight and verification run",
    )
    async def get_stage(
        self,
        state_store: StateStoreDep,
        settings: SettingsDep,
        principal: PrincipalDep,
        namespace: Namespace,
        name: Annotated[str, PathParameter(description="Stage name.", examples=[Example(value="prod")])],
        recent: Annotated[
            int | None,
            QueryParameter(ge=0, le=100, description="How many terminal Promotions to list (default 10)."),
        ] = None,
    ) -> StageView:
        """Show a Stage: its queue in Kargo's order, recent Promotions, current Freight and verification run."""
        principal.require_namespace(namespace)
        state = await state_store.stage_state(
            namespace, name, recent=settings.recent_promotions if recent is None else recent
        )
        if state is None:
            raise NotFound(f"Stage {namespace}/{name} is not recorded")
        return _stage_view(state)

    @get(
        "/promotions/{name:str}",
        operation_id="GetPromotion",
        opt=READ,
        security=SECURITY,
        responses=problem_responses(404, 503),
        summary="Show a Promotion and where it stands in its Stage's queue",
    )
    async def get_promotion(
        self,
        state_store: StateStoreDep,
        principal: PrincipalDep,
        namespace: Namespace,
        name: Annotated[
            str,
            PathParameter(
                description="Promotion name.", examples=[Example(value="prod.01kztrdxmgg3c76w16pjvk9zds.759376c")]
            ),
        ],
    ) -> PromotionView:
        """Show a Promotion and where it stands in its Stage's queue."""
        principal.require_namespace(namespace)
        found = await state_store.promotion(namespace, name)
        if found is None:
            raise NotFound(f"Promotion {namespace}/{name} is not recorded")
        stored, facts = found
        position: int | None = None
        ahead: list[str] = []
        if not facts.terminal:
            stage = await state_store.stage_state(namespace, facts.stage, recent=0)
            if stage is not None:
                names = [p.name for p in stage.queue]
                if name in names:
                    position = names.index(name)
                    ahead = names[:position]
        return PromotionView(
            namespace=namespace,
            name=name,
            stage=facts.stage,
            phase=facts.phase,
            freight=facts.freight,
            terminal=facts.terminal,
            queue_position=position,
            ahead=ahead,
            resource_version=stored.resource_version,
            created_at=format_time(facts.created_at),
            started_at=format_time(facts.started_at),
            finished_at=format_time(facts.finished_at),
            abort_requested=facts.abort_requested,
            object=stored.object,
        )


def _summary(p: PromotionFacts) -> PromotionSummary:
    return PromotionSummary(
        name=p.name,
        phase=p.phase,
        freight=p.freight,
        created_at=format_time(p.created_at),
        started_at=format_time(p.started_at),
        finished_at=format_time(p.finished_at),
        abort_requested=p.abort_requested,
    )


def _run(v: Verification) -> VerificationRun:
    return VerificationRun(
        name=v.name,
        phase=v.phase,
        effective_phase=v.effective_phase,
        terminated=v.terminated,
        aborted_by_user=v.aborted_by_user,
        awaiting_kargo=v.awaiting_kargo,
        source=v.source,
        message=v.message,
        freight_collection=v.freight_collection,
        promotion_annotation=v.promotion,
        created_at=format_time(v.created_at),
        started_at=format_time(v.started_at),
        completed_at=format_time(v.completed_at),
    )


def _current_freight(state: StageState) -> CurrentFreight | None:
    status = state.stage.object.get("status") or {}
    history = status.get("freightHistory") or []
    if not history or not isinstance(history[0], dict):
        return None
    items = history[0].get("items") or {}
    names = [ref.get("name") for ref in items.values() if isinstance(ref, dict) and ref.get("name")]
    record = None
    if state.kargo.records:
        newest = state.kargo.records[0]
        record = KargoVerificationRecord(
            id=newest.id,
            phase=newest.phase or None,
            analysis_run=newest.run,
            reused=state.kargo_record is not None and state.kargo_record[1],
            start_time=format_time(newest.started_at),
            finish_time=format_time(newest.finished_at),
            message=newest.message,
        )
    return CurrentFreight(
        collection_id=state.kargo.freight_collection, freight=sorted(names), kargo_verification=record
    )


def _stage_view(state: StageState) -> StageView:
    raw = state.stage.object
    status = raw.get("status") or {}
    return StageView(
        namespace=state.stage.key.namespace,
        name=state.stage.key.name,
        resource_version=state.stage.resource_version,
        has_verification=state.has_verification,
        health=state.health_status,
        current_promotion=state.current_promotion,
        last_promotion=state.last_promotion,
        queue=[_summary(p) for p in state.queue],
        recent_promotions=[_summary(p) for p in state.recent],
        last_succeeded_promotion=_summary(state.last_succeeded) if state.last_succeeded else None,
        current_freight=_current_freight(state),
        current_verification=_run(state.verification) if state.verification else None,
        conditions=[c for c in status.get("conditions") or [] if isinstance(c, dict)],
    )
