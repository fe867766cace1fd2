"""The admission webhook: may this Promotion be created? Answered from the policies that apply at ``admission``.

The API server sends an AdmissionReview for Promotion CREATE; the answer is the prospective decision for the
Promotion's Stage and Freight (``point: admission`` in the input, so only policies whose scope lists that point
are asked: a new Promotion is always last in its queue, so FIFO order means nothing here, while "do not queue
behind a running verification" does). Denied: HTTP-style 403 with a message naming each policy and reason
(kubectl prints it); warn-mode policies come back as ``warnings`` (kubectl prints those too). The decision is
logged with the requesting user, except for a review with ``dryRun``, which changes nothing.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.params import Body, QueryParameter

from policy_server.api.admission.schemas import AdmissionResponse, AdmissionReview, Status
from policy_server.api.auth import CONTROL, SECURITY, PrincipalDep
from policy_server.api.decisions.controllers import DecisionServiceDep
from policy_server.api.problems import problem_responses
from policy_server.errors import InvalidInput
from policy_server.service.decisions import Question

_WARNING_CHARS = 250


class AdmissionController(Controller):
    """Admission reviews from the Kubernetes API server."""

    path = "/v1/admission"
    tags = ["admission"]

    @post(
        "/promotions",
        operation_id="ReviewPromotion",
        opt=CONTROL,
        security=SECURITY,
        status_code=200,
        responses=problem_responses(422, 503),
        summary="Admission webhook: may this Promotion be created? (AdmissionReview admission.k8s.io/v1)",
    )
    async def review(
        self,
        data: Annotated[
            AdmissionReview,
            Body(description="The review the API server sends for a Promotion CREATE (admission.k8s.io/v1)."),
        ],
        decision_service: DecisionServiceDep,
        principal: PrincipalDep,
        timeout: Annotated[
            str | None,
            QueryParameter(description="What the API server adds: how long it waits for the answer (e.g. `5s`)."),
        ] = None,
    ) -> AdmissionReview:
        """Answer a ValidatingWebhookConfiguration's review of a Promotion CREATE with the prospective decision for
        its Stage and Freight at the `admission` point; other operations and kinds are allowed untouched."""
        request = data.request
        if isinstance(request, msgspec.UnsetType):
            raise InvalidInput("an AdmissionReview carries a `request`")
        answer = AdmissionReview(api_version=data.api_version)
        obj = request.object or {}
        if request.operation != "CREATE" or request.kind.kind != "Promotion" or not obj:
            answer.response = AdmissionResponse(uid=request.uid, allowed=True)
            return answer
        namespace = request.namespace or (obj.get("metadata") or {}).get("namespace") or ""
        spec = obj.get("spec") or {}
        stage, freight = spec.get("stage"), spec.get("freight")
        if not namespace or not isinstance(stage, str) or not stage:
            raise InvalidInput("the Promotion in the review has no namespace or `spec.stage`")
        principal.require_namespace(namespace)
        user = request.user_info.username or "unknown user"
        decision = await decision_service.decide(
            Question(
                namespace,
                stage=stage,
                freight=freight if isinstance(freight, str) else None,
                caller=f"admission ({user})",
                point="admission",
                log=not request.dry_run,
            )
        )
        verdict = decision.verdict
        warnings = [f"{w.policy}: {w.message} ({w.code})"[:_WARNING_CHARS] for w in verdict.warnings] or None
        status = None
        if not verdict.allow:
            reasons = "; ".join(f"{r.policy}: {r.message} ({r.code})" for r in verdict.reasons)
            status = Status(
                code=403,
                message=f"policy-server denied creating this Promotion on Stage {stage}: {reasons} "
                f"(decision {decision.id})",
            )
        answer.response = AdmissionResponse(uid=request.uid, allowed=verdict.allow, status=status, warnings=warnings)
        return answer
