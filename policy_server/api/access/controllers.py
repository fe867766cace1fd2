"""``/v1/tokens`` and ``/v1/audit``: who may call policy-server, and who changed what."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED

from policy_server.api.auth import ADMIN, SECURITY, PrincipalDep
from policy_server.api.params import Since, Until, query_time
from policy_server.api.problems import problem_responses
from policy_server.kargo import format_time
from policy_server.service.access import AccessService
from policy_server.store import Token

AccessServiceDep = NamedDependency[AccessService]
Role = Literal["reader", "controller", "policy-author", "admin"]


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A token to create."""

    name: str
    """A DNS label; it is the actor name in the audit trail and on policy revisions."""
    role: Role
    namespaces: list[str] | None = None
    """Limit the token to these namespaces (Kargo projects); null for all."""


class TokenView(msgspec.Struct):
    """A token, without its secret."""

    name: str
    role: str
    namespaces: list[str] | None
    created_at: str
    created_by: str
    revoked_at: str | None


class TokenCreated(msgspec.Struct):
    """A new token: `token` is the secret, shown only in this answer."""

    name: str
    role: str
    namespaces: list[str] | None
    token: str


class AuditEventView(msgspec.Struct):
    """One change: who, what, when, and the revisions before and after."""

    id: str
    at: str
    actor: str
    action: str
    target: str
    before: str | None
    after: str | None
    detail: dict[str, Any]


class AuditPage(msgspec.Struct):
    """Audit events, newest first."""

    items: list[AuditEventView]
    next_cursor: str | None


def _view(t: Token) -> TokenView:
    return TokenView(
        t.name, t.role, t.namespaces, format_time(t.created_at) or "", t.created_by, format_time(t.revoked_at)
    )


class AccessController(Controller):
    """Tokens and audit (admin tokens not limited to namespaces)."""

    path = "/v1"
    tags = ["access"]

    @post(
        "/tokens",
        operation_id="CreateToken",
        summary="Create a token",
        opt=ADMIN,
        security=SECURITY,
        status_code=HTTP_201_CREATED,
        responses=problem_responses(401, 403, 409, 422),
    )
    async def create_token(
        self, access_service: AccessServiceDep, principal: PrincipalDep, data: JSONBody[TokenCreate]
    ) -> TokenCreated:
        """Create a token; its secret is in this answer only (policy-server keeps a hash)."""
        principal.require_unscoped("managing tokens")
        token, secret = await access_service.create_token(data.name, data.role, data.namespaces, principal.name)
        return TokenCreated(token.name, token.role, token.namespaces, secret)

    @get(
        "/tokens",
        operation_id="ListTokens",
        summary="List tokens",
        opt=ADMIN,
        security=SECURITY,
        responses=problem_responses(401, 403),
    )
    async def list_tokens(self, access_service: AccessServiceDep, principal: PrincipalDep) -> list[TokenView]:
        """Every token, newest first, revoked ones included; never a secret."""
        principal.require_unscoped("managing tokens")
        return [_view(t) for t in await access_service.store.tokens()]

    @delete(
        "/tokens/{name:str}",
        operation_id="RevokeToken",
        summary="Revoke a token",
        opt=ADMIN,
        security=SECURITY,
        status_code=200,
        responses=problem_responses(401, 403, 404),
    )
    async def revoke_token(
        self,
        access_service: AccessServiceDep,
        principal: PrincipalDep,
        name: Annotated[str, PathParameter(description="The token's name.")],
    ) -> TokenView:
        """Revoke a token: it stops working on every replica within seconds."""
        principal.require_unscoped("managing tokens")
        return _view(await access_service.revoke(name, principal.name))

    @get(
        "/audit",
        operation_id="ListAuditEvents",
        summary="Browse the audit trail",
        opt=ADMIN,
        security=SECURITY,
        responses=problem_responses(401, 403, 422),
    )
    async def audit(
        self,
        access_service: AccessServiceDep,
        principal: PrincipalDep,
        action: Annotated[
            str | None, QueryParameter(description="e.g. policy.update, policy.rollback, token.create.")
        ] = None,
        actor: Annotated[str | None, QueryParameter(description="Token name.")] = None,
        target: Annotated[str | None, QueryParameter(description="e.g. policy/admission, token/ci.")] = None,
        since: Since = None,
        until: Until = None,
        cursor: Annotated[str | None, QueryParameter(description="`next_cursor` of the previous page.")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> AuditPage:
        """Policy changes, rollbacks, enforcement and scope changes, token creation and revocation."""
        principal.require_unscoped("the audit trail")
        events = await access_service.store.events(
            action=action,
            actor=actor,
            target=target,
            since=query_time(since, "since"),
            until=query_time(until, "until"),
            before=cursor,
            limit=limit + 1,
        )
        more = len(events) > limit
        events = events[:limit]
        return AuditPage(
            [
                AuditEventView(e.id, format_time(e.at) or "", e.actor, e.action, e.target, e.before, e.after, e.detail)
                for e in events
            ],
            events[-1].id if more and events else None,
        )
