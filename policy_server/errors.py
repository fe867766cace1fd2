"""The errors policy-server raises, each with a stable machine code.

PolicyServerError                 code              HTTP
 ├── InvalidInput                 invalid_input     422  a request or document is malformed
 │    ├── InvalidState            invalid_state     422  Kubernetes objects that cannot be recorded
 │    └── InvalidPolicy           invalid_policy    422  Rego that does not parse, compile, lint or pass its tests
 ├── PayloadTooLarge              payload_too_large 413  a body or item breaks a configured limit
 ├── Unauthorized                 unauthorized      401  no token, or an unknown or revoked one
 ├── Forbidden                    forbidden         403  the token's role or namespaces do not allow the call
 ├── NotFound                     not_found         404  an object the caller named does not exist
 ├── Conflict                     conflict          409  the request contradicts what is stored
 ├── RateLimited                  rate_limited      429  too many requests for this token (Retry-After)
 │    └── AuthoringBusy           authoring_busy    429  authoring capacity (checks, tests, drafts) is full
 └── Unavailable                  unavailable       503  a dependency (database, engine) is down

Foreign errors (SQLAlchemy, drivers, the Rego engine) are translated into this tree at the boundary
of the package that talks to them; the HTTP layer turns the tree into RFC 9457 problem details in one
place (``policy_server.api.problems``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem in one place of the input."""

    message: str
    field: str | None = None
    index: int | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The problem as JSON-ready data, without empty members."""
        out: dict[str, Any] = {"message": self.message}
        if self.index is not None:
            out["index"] = self.index
        if self.line is not None:
            out["line"] = self.line
        if self.field is not None:
            out["field"] = self.field
        return out


class PolicyServerError(Exception):
    """Base of every error the service raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, errors: list[Any] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.extra = extra


class InvalidInput(PolicyServerError):
    """A request or document is malformed."""

    code = "invalid_input"
    status = 422
    title = "Invalid input"


class InvalidPolicy(InvalidInput):
    """A policy revision that does not parse, compile, lint clean or pass its tests."""

    code = "invalid_policy"
    title = "Invalid policy"


class InvalidState(InvalidInput):
    """Kubernetes objects that cannot be recorded."""

    code = "invalid_state"
    title = "Invalid Kubernetes objects"


class PayloadTooLarge(PolicyServerError):
    """A body or item breaks a configured limit."""

    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class Unauthorized(PolicyServerError):
    """No token, or an unknown or revoked one."""

    code = "unauthorized"
    status = 401
    title = "Unauthorized"


class Forbidden(PolicyServerError):
    """The token's role or namespaces do not allow the call."""

    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(PolicyServerError):
    """An object the caller named does not exist."""

    code = "not_found"
    status = 404
    title = "Not found"


class RateLimited(PolicyServerError):
    """Too many requests for this token: retry after ``retry_after`` seconds."""

    code = "rate_limited"
    status = 429
    title = "Too many requests"


class AuthoringBusy(RateLimited):
    """Authoring capacity (checks, tests, drafts) is full: retry after ``retry_after`` seconds."""

    code = "authoring_busy"
    title = "Authoring is busy"


class Conflict(PolicyServerError):
    """The request contradicts what is stored."""

    code = "conflict"
    status = 409
    title = "Conflict"


class Unavailable(PolicyServerError):
    """A dependency (database, engine) is down."""

    code = "unavailable"
    status = 503
    title = "Service unavailable"


__all__ = [
    "AuthoringBusy",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "InvalidPolicy",
    "InvalidState",
    "NotFound",
    "PayloadTooLarge",
    "PolicyServerError",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
]
