"""Authentication and authorization at the HTTP edge: one guard for every route, capabilities per route."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Components, SecurityScheme

from policy_server.errors import Forbidden, RateLimited
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


class RateLimiter:
    """A token bucket per token name, in this process: ``rate`` requests per second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when a request may go now, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, since = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - since) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


def authorizer(
    access: Callable[[], AccessService], limiters: dict[str, RateLimiter] | None = None
) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """What runs before every handler (an app-wide ``before_request`` hook: a guard would cost a copy of the
    route handler per request), reading tokens through the running app's access service.

    ``limiters`` rate-limit routes by capability, per token: decisions and ingestion (``control``, what
    machines call in loops) and authoring (``author``: checks, tests and drafts have capacity of their own).
    """
    limiters = limiters or {}

    async def authorize(request: Request[Any, Any, Any]) -> Response[None] | None:
        handler = request.scope["route_handler"]
        if request.method == "OPTIONS":
            return _options(request)
        principal = await _authorize(access(), request.scope, handler)
        limiter = limiters.get(handler.opt.get("capability"))
        if principal is not None and limiter is not None:
            wait = limiter.take(principal.name)
            if wait > 0:
                raise RateLimited(
                    f"more than {limiter.rate:g} requests per second for this token", retry_after=math.ceil(wait)
                )
        return None

    return authorize


def _options(request: Request[Any, Any, Any]) -> Response[None]:
    """``OPTIONS``: open (a CORS preflight carries no token), and ``Allow`` names every method of the path (the
    handler Litestar generates lists only the methods registered before it)."""
    path = next(iter(request.scope["route_handler"].paths))
    methods: set[str] = {"OPTIONS"}
    for route in request.app.routes:
        if route.path == path:
            methods |= set(getattr(route, "methods", ()))
    return Response(None, status_code=204, headers={"Allow": ", ".join(sorted(methods))})


async def _authorize(access: AccessService, scope: Any, handler: BaseRouteHandler) -> Principal | None:
    """Every `/v1` route needs a token whose role grants the route's capability (admin when undeclared)."""
    capability = handler.opt.get("capability")
    if capability is None and not scope["path"].startswith("/v1"):
        return None  # probes, metrics and the docs stay open
    principal = await access.authenticate(_authorization(scope))
    need = capability or "admin"
    if principal.role not in GRANTS[need]:
        raise Forbidden(f"role {principal.role!r} of token {principal.name!r} may not do this (needs {need})")
    scope.setdefault("state", {})["principal"] = principal
    return principal


def _authorization(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name.lower() == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def current_principal(request: Request[Any, Any, Any]) -> Principal:
    """The authenticated caller (the anonymous admin when authentication is disabled)."""
    return (request.scope.get("state") or {}).get("principal", ANONYMOUS_ADMIN)
