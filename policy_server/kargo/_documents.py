"""Bodies that carry Kubernetes state: one object, a ``List``, a watch event, or NDJSON of those."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from policy_server.errors import FieldError, InvalidState
from policy_server.kargo._objects import KargoObject, Kind, ObjectError, classify, parse_object

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


def parse_body(body: bytes, content_type: str | None) -> list[Item]:
    """Every item of a request body. Raises InvalidState listing each malformed item."""
    errors: list[FieldError] = []
    items: list[Item] = []
    for line, raw in _documents(body, is_ndjson(content_type), errors):
        for field_prefix, value, default_kind in _expand(raw):
            index = len(items)
            try:
                items.append(_item(index, line, value, default_kind))
            except ObjectError as exc:
                field = f"{field_prefix}.{exc.field}" if field_prefix else exc.field
                errors.append(FieldError(exc.message, field=field.replace(".(object)", ""), index=index, line=line))
                items.append(Item(index, Action.SKIP, line=line))
    if errors:
        raise InvalidState(_summary(errors), errors=errors)
    return items


def _summary(errors: list[FieldError]) -> str:
    first = errors[0]
    where = f"line {first.line}" if first.line is not None else f"item {first.index}"
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


def _expand(raw: Any) -> Iterator[tuple[str, Any, Kind | None]]:
    """Flatten Lists (``kind: List`` from kubectl, ``PromotionList`` from the API) and JSON arrays."""
    if isinstance(raw, list):
        for i, value in enumerate(raw):
            yield f"[{i}]", value, None
        return
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
        raise ObjectError("(object)", "expected a JSON object (a Kubernetes object or a watch event)")
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
