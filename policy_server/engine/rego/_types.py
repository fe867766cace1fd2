"""Coarse Rego types for the strict check: the kinds a value may have, and for collections their elements'."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = frozenset({"null", "boolean", "number", "string", "array", "object", "set"})


@dataclass(frozen=True, slots=True)
class Type:
    """A set of kinds; ``elem`` is the element (or object value) type when every kind is a collection."""

    kinds: frozenset[str]
    elem: Type | None = None

    @property
    def is_any(self) -> bool:
        return self.kinds == KINDS and self.elem is None


ANY = Type(KINDS)
NULL = Type(frozenset({"null"}))
BOOLEAN = Type(frozenset({"boolean"}))
NUMBER = Type(frozenset({"number"}))
STRING = Type(frozenset({"string"}))


def collection(kind: str, elem: Type | None = None) -> Type:
    return Type(frozenset({kind}), None if elem is None or elem.is_any else elem)


def union(types: list[Type]) -> Type:
    """The type of a value that is one of ``types``."""
    if not types:
        return ANY
    kinds = frozenset().union(*(t.kinds for t in types))
    elems = [t.elem for t in types]
    elem = None
    if kinds <= {"array", "set", "object"} and all(e is not None for e in elems):
        elem = union([e for e in elems if e is not None])
        elem = None if elem.is_any else elem
    return Type(kinds, elem)


def compatible(actual: Type, expected: Type) -> bool:
    """Whether a value of type ``actual`` may be passed where ``expected`` is declared (OPA's check, coarsely)."""
    if actual.is_any or expected.is_any:
        return True
    common = actual.kinds & expected.kinds
    if not common:
        return False
    if actual.elem is not None and expected.elem is not None and common <= {"array", "set", "object"}:
        return compatible(actual.elem, expected.elem)
    return True


def from_decl(decl: dict[str, Any] | None) -> Type:
    """A type from OPA's capabilities declaration."""
    if not decl:
        return ANY
    kind = decl.get("type")
    if kind == "any":
        of = decl.get("of")
        if not of:
            return ANY
        return union([from_decl(d) for d in (of if isinstance(of, list) else [of])])
    if kind in ("null", "boolean", "number", "string"):
        return Type(frozenset({kind}))
    if kind == "array":
        if "dynamic" in decl:
            return collection("array", from_decl(decl["dynamic"]))
        static = decl.get("static") or []
        return collection("array", union([from_decl(d) for d in static]) if static else None)
    if kind == "set":
        return collection("set", from_decl(decl.get("of")))
    if kind == "object":
        dynamic = decl.get("dynamic")
        if dynamic:
            return collection("object", from_decl(dynamic.get("value")))
        return collection("object")
    return ANY


@dataclass(frozen=True, slots=True)
class Builtin:
    """A builtin function of OPA: its arity, argument and result types."""

    name: str
    args: tuple[Type, ...]
    result: Type
    deprecated: bool = False
    infix: str | None = None
    variadic: bool = False

    @property
    def arity(self) -> int:
        return len(self.args)


@functools.cache
def builtins() -> dict[str, Builtin]:
    """OPA's builtins (``capabilities.json``, from ``opa capabilities`` of the pinned OPA; see its README)."""
    data = json.loads((Path(__file__).parent / "capabilities.json").read_text())
    out = {}
    for item in data["builtins"]:
        decl = item.get("decl") or {}
        args = tuple(from_decl(a) for a in decl.get("args") or [])
        out[item["name"]] = Builtin(
            item["name"],
            args,
            from_decl(decl.get("result")),
            bool(item.get("deprecated")),
            item.get("infix"),
            bool(decl.get("variadic")),
        )
    return out


INFIX = {
    "+": "plus", "-": "minus", "*": "mul", "/": "div", "%": "rem", "&": "and", "|": "or",
    "==": "equal", "!=": "neq", "<": "lt", ">": "gt", "<=": "lte", ">=": "gte",
}  # fmt: skip


def trim_capabilities(data: dict[str, Any]) -> dict[str, Any]:
    """What the check needs of ``opa capabilities --current``: names, declarations, infix and deprecation."""

    def strip(decl: Any) -> Any:
        if isinstance(decl, dict):
            return {k: strip(v) for k, v in sorted(decl.items()) if k not in ("description", "name")}
        if isinstance(decl, list):
            return [strip(v) for v in decl]
        return decl

    out = []
    for item in sorted(data["builtins"], key=lambda b: b["name"]):
        kept: dict[str, Any] = {"name": item["name"], "decl": strip(item.get("decl") or {})}
        for key in ("infix", "deprecated", "relation"):
            if item.get(key):
                kept[key] = item[key]
        out.append(kept)
    return {"builtins": out}
