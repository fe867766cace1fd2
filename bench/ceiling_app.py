"""The product's app with one bench-only route: the POST ceiling.

``POST /v1/bench/ceiling`` goes through everything a decision request goes through in the framework and the
app (the same middleware, the token check of the ``control`` capability and its namespace scope, the body decoded
into ``DecisionRequest``, a ``DecisionView`` encoded as the answer) and does nothing else: no state read, no
evaluation, no log. What decisions cost beyond it is the decision path's own.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, post
from litestar.status_codes import HTTP_200_OK

from policy_server.api.auth import CONTROL, current_principal
from policy_server.api.decisions.controllers import _question
from policy_server.api.decisions.schemas import DecisionRequest, DecisionView, StageRef
from policy_server.api.policies.schemas import PolicyRefView, PromotionRef, ReasonView
from policy_server.app import create_app as create_product_app

CEILING_PATH = "/v1/bench/ceiling"


@post(CEILING_PATH, opt=CONTROL, status_code=HTTP_200_OK, include_in_schema=False)
async def ceiling(request: Request[Any, Any, Any], data: DecisionRequest) -> DecisionView:
    principal = current_principal(request)
    question = _question(data, request, principal)
    principal.require_namespace(question.namespace)
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
    return app
