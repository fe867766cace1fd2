"""Top-level function heads of Rego modules, and the clashes regopy cannot bear.

regopy 1.5.2 crashes the process evaluating a bundle in which two modules, even in different packages, define
functions of the same name with different numbers of arguments (``_f(x)`` in one policy, ``_f(x, y)`` in
another). Every active policy is compiled into one bundle, so one author's helper name could take every
decision down: a draft whose function heads clash with another active policy's is refused before it exists.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPEN = "([{"
_CLOSE = ")]}"


@dataclass(frozen=True, slots=True)
class FunctionHead:
    """``name(a, b)`` at the top level of a module: its name, arity and line."""

    name: str
    arity: int
    line: int


def function_heads(source: str) -> list[FunctionHead]:
    """The functions a module defines: a statement at depth 0 that starts with ``name(`` (after ``default``)."""
    heads: list[FunctionHead] = []
    depth = 0
    line = 1
    statement_start = True
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\n":
            line += 1
            if depth == 0:
                statement_start = True
            i += 1
        elif ch in " \t\r;":
            i += 1
        elif ch == "#":
            while i < n and source[i] != "\n":
                i += 1
        elif ch == '"':
            i = _skip_string(source, i)
        elif ch == "`":
            end = source.find("`", i + 1)
            end = n if end < 0 else end + 1
            line += source.count("\n", i, end)
            i = end
        elif ch in _OPEN:
            depth += 1
            statement_start = False
            i += 1
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
            statement_start = False
            i += 1
        else:
            match = _IDENT.match(source, i)
            if match is None:
                statement_start = False
                i += 1
                continue
            word = match.group()
            i = match.end()
            if depth == 0 and statement_start and word == "default":
                continue
            if depth == 0 and statement_start and i < n and source[i] == "(":
                arity, i, lines = _arguments(source, i)
                heads.append(FunctionHead(word, arity, line))
                line += lines
            statement_start = False
    return heads


def _skip_string(source: str, i: int) -> int:
    i += 1
    while i < len(source) and source[i] not in '"\n':
        i += 2 if source[i] == "\\" else 1
    return i + 1


def _arguments(source: str, i: int) -> tuple[int, int, int]:
    """The number of arguments of the call-shaped head at ``source[i] == "("``, where it ends, newlines in it."""
    depth, commas, any_text, lines = 0, 0, False, 0
    while i < len(source):
        ch = source[i]
        if ch == '"':
            i = _skip_string(source, i)
            any_text = True
            continue
        if ch == "\n":
            lines += 1
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0:
                return (commas + 1 if any_text else 0), i + 1, lines
        elif ch == "," and depth == 1:
            commas += 1
        elif not ch.isspace() and depth >= 1:
            any_text = True
        i += 1
    return commas + 1, i, lines


@dataclass(frozen=True, slots=True)
class FunctionClash:
    """A function of this module whose name another policy defines with another arity."""

    head: FunctionHead
    other_policy: str
    other_arity: int


def function_clashes(source: str, others: Mapping[str, str]) -> list[FunctionClash]:
    """Functions of ``source`` that other policies (id → source) define with a different number of arguments."""
    theirs: dict[str, dict[int, str]] = {}
    for policy_id, other in others.items():
        for head in function_heads(other):
            theirs.setdefault(head.name, {}).setdefault(head.arity, policy_id)
    clashes = []
    seen: set[tuple[str, int]] = set()
    for head in function_heads(source):
        for arity, policy_id in sorted(theirs.get(head.name, {}).items()):
            if arity != head.arity and (head.name, arity) not in seen:
                seen.add((head.name, arity))
                clashes.append(FunctionClash(head, policy_id, arity))
    return clashes
