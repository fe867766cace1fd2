"""Authentication and authorization at the HTTP edge: one guard for every route, capabilities per route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Components, SecurityScheme

from policy_server.errors import Forbidden
from policy_server.service.access import ANONYMOUS_ADMIN, GRANTS, AccessService, Principal

READ = {"capability": "read"}
CONTROL = {"capability": "control"}
AUTHOR = {"capability": "author"}
ADMIN = {"capability": "admin"}
PrincipalDep = NamedDependency[Principal]
SECURITY = [{"bearer": []}]

SECURITY_COMPONENTS = Components(
    security_schemes={
        "bearer": SecurityScheme(
            type="http",
            scheme="bearer",
            description="A token from `policy-server tokens create` (or the bootstrap admin token). "
            "Roles: reader, controller, policy-author, admin; a token may be limited to namespaces.",
        )
    }
)


def authorizer(access: Callable[[], AccessService]) -> Callable[..., Awaitable[None]]:
    """The guard of every route, reading tokens through the running app's access service."""

    async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        await _authorize(access(), connection, handler)

    return authorize


async def _authorize(
    access: AccessService, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Every `/v1` route needs a token whose role grants the route's capability (admin when undeclared)."""
    capability = handler.opt.get("capability")
    if capability is None and not connection.url.path.startswith("/v1"):
        return  # probes, metrics and the docs stay open
    principal = await access.authenticate(connection.headers.get("authorization"))
    need = capability or "admin"
    if principal.role not in GRANTS[need]:
        raise Forbidden(f"role {principal.role!r} of token {principal.name!r} may not do this (needs {need})")
    connection.state["principal"] = principal


def current_principal(request: Request[Any, Any, Any]) -> Principal:
    """The authenticated caller (the anonymous admin when authentication is disabled)."""
    return request.state.get("principal", ANONYMOUS_ADMIN)
