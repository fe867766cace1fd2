"""The product's app with two bench-only routes: the POST ceiling, and the POST ceiling with the store's probe.

``POST /v1/bench/ceiling`` goes through everything a decision request goes through in the framework and the
app (the same middleware, the token check of the ``control`` capability and its namespace scope, the body decoded
into ``DecisionRequest``, a ``DecisionView`` encoded as the answer) and does nothing else: no state read, no
evaluation, no log. What decisions cost beyond it is the decision path's own.

``POST /v1/bench/ceiling/probe`` adds the one read a repeated decision cannot skip and stay consistent with the
store: the probe of the question's Stage (its state versions, the policy-set version, its claim and the last
logged answer), through the product's own store, exactly as a decision reads it (on PostgreSQL a round trip,
shared by the questions that arrive while one is in flight; on SQLite no statement while the file is unchanged).
What a repeated decision costs beyond this row is the service's own work: no evaluation, log fold, metrics.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, post
from litestar.exceptions import ValidationException
from litestar.status_codes import HTTP_200_OK

from policy_server.api.auth import CONTROL, current_principal
from policy_server.api.decisions.controllers import DecisionServiceDep, _question
from policy_server.api.decisions.schemas import DecisionRequest, DecisionView, StageRef
from policy_server.api.policies.schemas import PolicyRefView, PromotionRef, ReasonView
from policy_server.app import create_app as create_product_app
from policy_server.kargo import stage_of_name
from policy_server.service.decisions import Question

CEILING_PATH = "/v1/bench/ceiling"
PROBE_CEILING_PATH = "/v1/bench/ceiling/probe"


@post(CEILING_PATH, opt=CONTROL, status_code=HTTP_200_OK, include_in_schema=False)
async def ceiling(request: Request[Any, Any, Any], data: DecisionRequest) -> DecisionView:
    principal = current_principal(request)
    question = _question(data, request, principal)
    principal.require_namespace(question.namespace)
    return _answer(question)


@post(PROBE_CEILING_PATH, opt=CONTROL, status_code=HTTP_200_OK, include_in_schema=False)
async def ceiling_probe(
    request: Request[Any, Any, Any], decision_service: DecisionServiceDep, data: DecisionRequest
) -> DecisionView:
    principal = current_principal(request)
    question = _question(data, request, principal)
    principal.require_namespace(question.namespace)
    stage = question.stage or stage_of_name(question.promotion)
    if stage is None:
        raise ValidationException("the ceiling with a probe needs a Stage")
    await decision_service.state.probe(question.namespace, stage, question.promotion)
    return _answer(question)


def _answer(question: Question) -> DecisionView:
    return DecisionView(
        id="01KZTRDXMGG3C76W16PJVK9ZDS",
        allow=False,
        promotion=PromotionRef(question.namespace, question.promotion) if question.promotion else None,
        prospective=question.prospective,
        stage=StageRef(question.namespace, "prod"),
        freight="0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9",
        evaluated_at="2026-12-02T06:00:00.123456Z",
        reasons=[ReasonView("block-while-verifying", "verification_running", "Stage prod is verifying Freight f")],
        warnings=[],
        dry_run=[],
        actions=[],
        dry_run_actions=[],
        policies=[PolicyRefView(p, 1, "enforce") for p in ("fifo-queue", "block-while-verifying", "cancel-queue")],
        input_hash="0" * 64,
        duration_ms=0.1,
        claimed=False,
        repeat_count=1,
    )


def create_app() -> Litestar:
    app = create_product_app()
    app.register(ceiling)
    app.register(ceiling_probe)
    return app
