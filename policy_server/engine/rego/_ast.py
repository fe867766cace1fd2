"""The Rego syntax tree the strict check reads: modules, rules, bodies, literals and terms, each with a position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Pos = tuple[int, int]
"""Line and column, both from 1."""


@dataclass(eq=False, slots=True)
class Var:
    """A variable (or a rule, import or ``input``/``data`` reached by name); ``_`` is renamed per occurrence."""

    name: str
    pos: Pos
    wildcard: bool = False


@dataclass(eq=False, slots=True)
class Scalar:
    """A string, number, boolean or null."""

    value: Any
    pos: Pos
    raw: bool = False
    """A string written between backticks."""


@dataclass(eq=False, slots=True)
class Ref:
    """``head.a[b]...``: a head term and the path after it (dotted names become string scalars)."""

    head: Term
    path: list[Term]
    pos: Pos


@dataclass(eq=False, slots=True)
class Call:
    """``name(args)``: a builtin or a user function, named by its dotted path."""

    name: str
    name_pos: Pos
    args: list[Term]
    pos: Pos
    target: Ref | Var | None = None
    """The reference the name was written as (``data.lib.f``, an import alias…)."""


@dataclass(eq=False, slots=True)
class Array:
    items: list[Term]
    pos: Pos


@dataclass(eq=False, slots=True)
class Object:
    items: list[tuple[Term, Term]]
    pos: Pos


@dataclass(eq=False, slots=True)
class Set:
    items: list[Term]
    pos: Pos


@dataclass(eq=False, slots=True)
class Comprehension:
    """``[t | body]``, ``{t | body}`` or ``{k: v | body}``."""

    kind: str
    """``array``, ``set`` or ``object``."""
    term: Term
    body: list[Literal]
    pos: Pos
    value: Term | None = None
    """The value of an object comprehension (``term`` is its key)."""


@dataclass(eq=False, slots=True)
class BinOp:
    """An infix operator: ``:=``, ``=``, comparisons, arithmetic, ``|`` and ``&``."""

    op: str
    left: Term
    right: Term
    pos: Pos


@dataclass(eq=False, slots=True)
class Member:
    """``x in xs`` or ``k, v in xs``."""

    key: Term | None
    value: Term
    collection: Term
    pos: Pos


@dataclass(eq=False, slots=True)
class Unary:
    """``-x``."""

    term: Term
    pos: Pos


Term = Var | Scalar | Ref | Call | Array | Object | Set | Comprehension | BinOp | Member | Unary


@dataclass(eq=False, slots=True)
class With:
    target: Term
    value: Term
    pos: Pos


@dataclass(eq=False, slots=True)
class Expr:
    """A literal that is an expression, maybe negated, with ``with`` modifiers."""

    term: Term
    pos: Pos
    negated: bool = False
    withs: list[With] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class SomeDecl:
    """``some x, y``: declares local variables."""

    names: list[Var]
    pos: Pos


@dataclass(eq=False, slots=True)
class SomeIn:
    """``some v in xs`` / ``some k, v in xs``."""

    key: Term | None
    value: Term
    collection: Term
    pos: Pos
    withs: list[With] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Every:
    """``every v in xs { body }`` / ``every k, v in xs { body }``."""

    key: Var | None
    value: Var
    domain: Term
    body: list[Literal]
    pos: Pos
    withs: list[With] = field(default_factory=list)


Literal = Expr | SomeDecl | SomeIn | Every


@dataclass(eq=False, slots=True)
class Rule:
    """One rule definition (an ``else`` branch is a rule of its own, chained to the first)."""

    path: list[str]
    """The rule's name and, for a ref head, the rest of its path (``a.b.c``)."""
    kind: str
    """``complete``, ``set`` (``contains``), ``object`` (``p[k] := v``) or ``function``."""
    pos: Pos
    key: Term | None = None
    value: Term | None = None
    args: list[Term] | None = None
    bodies: list[list[Literal]] = field(default_factory=list)
    default: bool = False
    else_of: Rule | None = None
    head_refs: list[Term] = field(default_factory=list)
    """Terms written in brackets of a ref head (``a[x].b``)."""

    @property
    def name(self) -> str:
        return self.path[0]


@dataclass(eq=False, slots=True)
class Import:
    path: list[str]
    alias: str | None
    pos: Pos

    @property
    def name(self) -> str:
        """The name the module uses for the import."""
        return self.alias or self.path[-1]


@dataclass(eq=False, slots=True)
class Module:
    file: str
    package: list[str]
    package_pos: Pos
    imports: list[Import]
    rules: list[Rule]
