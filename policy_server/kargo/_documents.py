"""Bodies that carry Kubernetes state: one object, a ``List``, a watch event, or NDJSON of those."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from policy_server.errors import FieldError, InvalidState, PayloadTooLarge
from policy_server.kargo._objects import KargoObject, Kind, ObjectError, classify, parse_object, type_name
from policy_server.kargo._yaml import YamlError, is_yaml, yaml_documents

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines"})


class Action(StrEnum):
    """What an item asks the store to do."""

    APPLY = "apply"
    DELETE = "delete"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Item:
    """One object or watch event of a body, in the order it came."""

    index: int
    action: Action
    obj: KargoObject | None = None
    line: int | None = None
    skipped_kind: str | None = None


def is_ndjson(content_type: str | None) -> bool:
    """Whether a Content-Type header announces newline-delimited JSON."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in NDJSON_TYPES


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one body may carry (each breach names the limit)."""

    max_lines: int = 50_000
    max_items: int = 50_000
    max_depth: int = 64
    max_string_bytes: int = 1024 * 1024


def parse_body(body: bytes, content_type: str | None, limits: Limits | None = None) -> list[Item]:
    """Every item of a request body (JSON, NDJSON or YAML). Raises InvalidState listing each malformed item."""
    limits = limits or Limits()
    ndjson = is_ndjson(content_type)
    yaml_body = is_yaml(content_type)
    if ndjson and body.count(b"\n") >= limits.max_lines:
        lines = sum(1 for line in body.splitlines() if line.strip())
        if lines > limits.max_lines:
            raise PayloadTooLarge(
                f"{lines} lines is more than max_ndjson_lines={limits.max_lines}: split the stream",
                limit="max_ndjson_lines",
            )
    errors: list[FieldError] = []
    items: list[Item] = []
    limit: str | None = None
    documents = _yaml_documents(body, limits, errors) if yaml_body else _documents(body, ndjson, errors)
    for line, raw in documents:
        problem = check_shape(raw, limits.max_depth, limits.max_string_bytes)
        if problem is not None:
            errors.append(FieldError(problem, line=line))
            limit = limit or ("max_json_depth" if "max_json_depth" in problem else "max_string_bytes")
            continue
        for field_prefix, value, default_kind in _expand(raw):
            index = len(items)
            try:
                items.append(_item(index, line, value, default_kind))
            except ObjectError as exc:
                field = f"{field_prefix}.{exc.field}" if field_prefix else exc.field
                errors.append(FieldError(exc.message, field=field.replace(".(object)", ""), index=index, line=line))
                items.append(Item(index, Action.SKIP, line=line))
            if len(items) > limits.max_items:
                raise PayloadTooLarge(
                    f"more than max_list_items={limits.max_items} objects in one request: split it",
                    limit="max_list_items",
                )
    if errors:
        raise InvalidState(_summary(errors), errors=errors, limit=limit)
    return items


def check_shape(value: Any, max_depth: int, max_string_bytes: int) -> str | None:
    """Why a decoded JSON document breaks the depth or string limits, or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            if depth > max_depth:
                return f"nested deeper than max_json_depth={max_depth}"
            for key, item in current.items():
                if len(key) > max_string_bytes:
                    return f"a key longer than max_string_bytes={max_string_bytes}"
                stack.append((item, depth + 1))
        elif isinstance(current, list):
            if depth > max_depth:
                return f"nested deeper than max_json_depth={max_depth}"
            stack.extend((item, depth + 1) for item in current)
        elif isinstance(current, str) and len(current) > max_string_bytes:
            return f"a string longer than max_string_bytes={max_string_bytes}"
    return None


def _summary(errors: list[FieldError]) -> str:
    first = errors[0]
    where = (
        f"line {first.line}" if first.line is not None else f"item {first.index}" if first.index is not None else "body"
    )
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    field = f" {first.field}:" if first.field else ""
    return f"{where}:{field} {first.message}{more}; nothing was stored"


def _documents(body: bytes, ndjson: bool, errors: list[FieldError]) -> Iterator[tuple[int | None, Any]]:
    if not ndjson:
        try:
            yield None, msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            errors.append(FieldError(f"the body is not valid JSON: {exc}"))
        return
    for number, text in enumerate(body.split(b"\n"), start=1):
        if not text.strip():
            continue
        try:
            yield number, msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            errors.append(FieldError(f"not valid JSON: {exc}", line=number))


def _yaml_documents(body: bytes, limits: Limits, errors: list[FieldError]) -> Iterator[tuple[int | None, Any]]:
    found = False
    try:
        for document in yaml_documents(body, limits.max_depth):
            found = True
            yield document
    except YamlError as exc:
        errors.append(FieldError(exc.message, line=exc.line))
        return
    if not found:
        errors.append(FieldError("the body holds no YAML document: send a Kubernetes object, a List, or several"))


def _expand(raw: Any) -> Iterator[tuple[str, Any, Kind | None]]:
    """Flatten Lists (``kind: List`` from kubectl, ``PromotionList`` from the API). A bare JSON array is not
    one of the documented forms (an object, a List, a watch event): ``_item`` refuses it."""
    if isinstance(raw, dict) and _is_list(raw):
        items = raw.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            yield "items", items, None
            return
        list_kind = raw.get("kind", "")
        default_kind = None
        if list_kind != "List":
            try:
                default_kind = Kind(list_kind[: -len("List")])
            except ValueError:
                default_kind = None
        for i, value in enumerate(items):
            yield f"items[{i}]", value, default_kind
        return
    yield "", raw, None


def _is_list(raw: dict) -> bool:
    kind = raw.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and "items" in raw and "type" not in raw


def _item(index: int, line: int | None, raw: Any, default_kind: Kind | None) -> Item:
    if not isinstance(raw, dict):
        kind = "an array: send a `kind: List`, or one object per line" if isinstance(raw, list) else type_name(raw)
        raise ObjectError(
            "(object)", f"expected a JSON object (a Kubernetes object, a List or a watch event), got {kind}"
        )
    if "object" in raw and "type" in raw and "kind" not in raw:
        return _event(index, line, raw)
    if default_kind is not None and "kind" not in raw:
        # Items of a typed list (e.g. PromotionList) from the API server may omit kind/apiVersion.
        raw = {"apiVersion": f"{default_kind.group}/v1alpha1", "kind": default_kind.value, **raw}
    return _object(index, line, raw, Action.APPLY, "")


def _event(index: int, line: int | None, raw: dict) -> Item:
    event_type = raw.get("type")
    if event_type in ("BOOKMARK", "ERROR"):
        return Item(index, Action.SKIP, line=line, skipped_kind=f"event:{event_type}")
    if event_type not in ("ADDED", "MODIFIED", "DELETED"):
        raise ObjectError("type", f"expected ADDED, MODIFIED, DELETED, BOOKMARK or ERROR, got {event_type!r}")
    action = Action.DELETE if event_type == "DELETED" else Action.APPLY
    return _object(index, line, raw["object"], action, "object.")


def _object(index: int, line: int | None, raw: Any, action: Action, prefix: str) -> Item:
    if not isinstance(raw, dict):
        raise ObjectError(prefix.rstrip(".") or "(object)", "expected a Kubernetes object")
    kind = classify(raw)
    if kind is None:
        kind_name = raw.get("kind")
        if not isinstance(kind_name, str) or not kind_name:
            raise ObjectError(f"{prefix}kind", "is required")
        if not isinstance(raw.get("apiVersion"), str):
            raise ObjectError(f"{prefix}apiVersion", "is required")
        return Item(index, Action.SKIP, line=line, skipped_kind=kind_name)
    try:
        obj = parse_object(raw, kind)
    except ObjectError as exc:
        raise ObjectError(f"{prefix}{exc.field}", exc.message) from None
    return Item(index, action, obj=obj, line=line)
