"""RFC 9457 problem details: the one place where errors become HTTP answers."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from policy_server.errors import PolicyServerError

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("policy_server.api")

_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "unavailable",
}


class ProblemField(msgspec.Struct, omit_defaults=True):
    """One problem in one place of the input: a field of an item, or a file, line and column of Rego."""

    message: str
    code: str | None = None
    field: str | None = None
    index: int | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem: ``code`` is stable and meant for machines, ``detail`` for people."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    errors: list[ProblemField] | None = None
    limit: str | None = None
    """The configured limit a request broke (413, 422)."""
    impact: dict[str, Any] | None = None
    """The impact report that refused a write (409 with `impact.max_flips`)."""


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    limit: str | None = None,
    impact: dict[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    """A problem details answer."""
    body: dict[str, Any] = {
        "type": f"https://policy-server.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    if limit:
        body["limit"] = limit
    if impact is not None:
        body["impact"] = impact
    return Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _service_error(request: Request[Any, Any, Any], exc: PolicyServerError) -> Response[dict[str, Any]]:
    if exc.status >= 500:
        _log.warning("%s %s: %s", request.method, request.url.path, exc.detail)
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        errors=[e.to_dict() for e in exc.errors] or None,
        headers=_headers(exc),
        limit=exc.extra.get("limit"),
        impact=exc.extra.get("impact"),
    )


def _headers(exc: PolicyServerError) -> dict[str, str] | None:
    if exc.status == 401:
        return {"WWW-Authenticate": 'Bearer realm="policy-server"'}
    if exc.status == 429:
        return {"Retry-After": str(exc.extra.get("retry_after", 1))}
    return None


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = []
    for item in exc.extra or []:
        if isinstance(item, dict):
            where = item.get("key")
            source = item.get("source")
            field = f"{source}.{where}" if source and where else where
            errors.append({"message": str(item.get("message", "")), **({"field": field} if field else {})})
    detail = exc.detail or "the request is malformed"
    if errors:
        detail = "; ".join(f"{e.get('field', 'request')}: {e['message']}" for e in errors)
    return problem_response(
        request, status=422, code="invalid_input", title="Invalid input", detail=detail, errors=errors
    )


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status == 400:
        # Litestar says 400 for a body it cannot decode: malformed input is 422 here, like every other.
        return problem_response(
            request,
            status=422,
            code="invalid_input",
            title="Invalid input",
            detail=f"the request is malformed: {exc.detail}",
        )
    if status >= 500:
        _log.error("error on %s %s: %s", request.method, request.url.path, exc.detail, exc_info=exc)
    code = _CODES_BY_STATUS.get(status, "http_error")
    detail = exc.detail
    if isinstance(exc, NotFoundException) and detail in ("", "Not Found"):
        detail = f"no such resource: {request.url.path}"
    title = code.replace("_", " ").capitalize()
    limit = "max_body_bytes" if status == 413 else None
    if limit:
        detail = "the request body is larger than max_body_bytes (POLICY_SERVER_MAX_BODY_BYTES)"
    return problem_response(
        request, status=status, code=code, title=title, detail=detail, headers=exc.headers, limit=limit
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    _log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal_error",
        title="Internal error",
        detail="the server failed to answer; the error is in its log",
    )


EXCEPTION_HANDLERS = {
    PolicyServerError: _service_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for the problem statuses an operation can answer."""
    descriptions = {
        401: "No token, or an unknown or revoked one.",
        429: "Too many requests for this token; `Retry-After` says when to try again.",
        403: "The token's role or namespaces do not allow this call.",
        404: "The named object is not recorded.",
        413: "The request body is larger than the configured limit.",
        422: "The request is malformed; `errors` says where. Nothing was changed.",
        503: "The database is unavailable; retry later. Nothing was changed.",
    }
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=descriptions.get(status, "Problem details."),
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }
