"""The request class of the app: a body's nesting depth is checked before anything decodes it, and a JSON body
is decoded strictly against its declared type (no `0` for `false`, no `"5"` for `5`) before Litestar converts it."""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

import msgspec
from litestar import Request

from policy_server.errors import FieldError, InvalidInput
from policy_server.kargo import is_yaml

DEPTH_LIMIT_KEY = "max_json_depth"
_CHECKED = "policy_server.depth_checked"
_STRICT = "policy_server.strictly_decoded"
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
# Opening brackets count +1, closing ones -1 (255 as a signed byte).
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether a JSON (or NDJSON) body nests arrays and objects deeper than ``limit``, found without decoding it:
    strings are dropped, the brackets kept, and the deepest running count of open ones taken (all in C)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRINGS.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) <= limit:
        return False
    return max(accumulate(array("b", brackets.translate(_STEPS)))) > limit


SIGNATURES_KEY = "handler_signatures"
_AT = re.compile(r" - at `\$\.?(.*)`$")


class HandlerSignature(msgspec.Struct, frozen=True):
    """What a request to one handler may carry: the declared type of its JSON body and its query names."""

    body: Any
    query: frozenset[str]


def handler_signatures(app: Any) -> dict[int, HandlerSignature]:
    """Each handler of ``app`` (by id, valid while the app lives) with its body type and query parameter names;
    built once when the app is created and kept in its state."""
    out: dict[int, HandlerSignature] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            names = set()
            for name, field in handler.parsed_fn_signature.parameters.items():
                names.add(name)
                # The name on the wire, when it differs: `Parameter(query=...)` or `QueryParameter(name=...)`.
                for attribute in ("query", "name"):
                    alias = getattr(field.kwarg_definition, attribute, None)
                    if isinstance(alias, str) and alias:
                        names.add(alias)
            data = handler.parsed_fn_signature.parameters.get("data")
            out[id(handler)] = HandlerSignature(data.annotation if data is not None else None, frozenset(names))
    return out


def _signature(request: Request[Any, Any, Any]) -> HandlerSignature | None:
    return request.app.state[SIGNATURES_KEY].get(id(request.scope["route_handler"]))


class PolicyServerRequest(Request[Any, Any, Any]):
    """Bodies deeper than ``max_json_depth`` are a 422 before any decoder recurses into them, and JSON bodies
    must have exactly their declared types (Litestar converts leniently)."""

    async def json(self) -> Any:
        signature = _signature(self)
        target = signature.body if signature is not None else None
        if target is not None and not self.scope.get(_STRICT):  # type: ignore[misc]
            self.scope[_STRICT] = True  # type: ignore[literal-required]
            body = await self.body()
            if body:
                try:
                    msgspec.json.decode(body, type=target, strict=True)
                except msgspec.ValidationError as exc:
                    text = str(exc)
                    match = _AT.search(text)
                    field = match.group(1) if match else None
                    message = _AT.sub("", text)
                    raise InvalidInput(
                        f"{field or 'the body'}: {message}", errors=[FieldError(message, field=field or None)]
                    ) from None
                except msgspec.DecodeError:
                    pass  # not JSON at all: Litestar reports it as such
        return await super().json()

    async def body(self) -> bytes:
        body = await super().body()
        if not self.scope.get(_CHECKED):  # type: ignore[misc]
            self.scope[_CHECKED] = True  # type: ignore[literal-required]
            limit = self.app.state.get(DEPTH_LIMIT_KEY)
            yaml_body = is_yaml(self.headers.get("content-type"))  # YAML's nesting is bounded by its own reader
            if limit and not yaml_body and len(body) > 2 * limit and json_depth_exceeds(body, limit):
                raise InvalidInput(
                    f"the body is nested deeper than max_json_depth={limit} (POLICY_SERVER_MAX_JSON_DEPTH)",
                    limit="max_json_depth",
                )
        return body


def reject_unknown_query_parameters(request: Request[Any, Any, Any]) -> None:
    """A query parameter the operation does not have (a typo such as `?stge=prod`) is a 422, not an unfiltered
    answer."""
    if not request.scope.get("query_string"):
        return
    signature = _signature(request)
    if signature is None:
        return
    unknown = sorted(set(request.query_params) - signature.query)
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise InvalidInput(
            f"unknown query parameter {names} for {request.method} {request.url.path}",
            errors=[FieldError("unknown query parameter", field=n) for n in unknown],
        )
