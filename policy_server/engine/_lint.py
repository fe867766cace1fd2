"""Lint for Rego that regopy misreads, that leaks the sandbox, or that breaks determinism or parity with OPA."""

from __future__ import annotations

import re
from dataclasses import dataclass

from policy_server.engine._diagnostics import Problem
from policy_server.engine._model import package_of

# Builtins a policy must not call: they leak the service (environment, stdout, network), read the clock
# or randomness (decisions must replay), or are stubs in regopy that differ from OPA.
_FORBIDDEN = {
    "opa.runtime": "returns the service's whole environment (database URLs, tokens)",
    "print": "writes to the service's stdout",
    "trace": "writes to the service's trace output",
    "http.send": "reaches the network (and is a stub in regopy)",
    "net.": "reaches the network or the resolver (and is a stub in regopy)",
    "time.now_ns": "reads the clock: use input.now_ns so that decisions replay",
    "rand.": "is random: decisions must replay",
    "uuid.rfc4122": "is random: decisions must replay",
    "rego.metadata.": "is not supported by regopy",
    "json.match_schema": "is a stub in regopy",
    "json.verify_schema": "is a stub in regopy",
    "strings.render_template": "is a stub in regopy",
    "graphql.": "is a stub in regopy",
    "io.jwt.decode_verify": "reads the clock when no time is given",
    "opa.": "exposes the service's runtime",
}
_CALL = re.compile(r"(?<![\w.])([a-z_][\w]*(?:\.[a-z_][\w]*)*)\s*\(")
# Regex syntax of RE2 (OPA) that ECMAScript std::regex (regopy) rejects or reads differently.
_RE2_ONLY = [
    (re.compile(r"\(\?[imsU-]+\)|\(\?[imsU-]+:"), "inline flags like (?i) are RE2 syntax; regopy rejects them"),
    (re.compile(r"\(\?P?<[A-Za-z]"), "named groups are RE2 syntax; regopy rejects them"),
    (re.compile(r"\\[pP]\{?"), "Unicode classes (\\p{...}) are RE2 syntax; regopy does not support them"),
    (re.compile(r"\\[Az]"), "\\A and \\z are RE2 anchors; regopy reads them as letters: use ^ and $"),
]
_RULE_HEAD = re.compile(
    r"^(?P<name>[A-Za-z_][\w]*)(?P<key>\s*\[[^\]]*\])?(?P<args>\s*\([^)]*\))?"
    r"(?P<value>\s*(?::=|=)\s*(?P<expr>[^{]*?))?\s*\{"
)


@dataclass(frozen=True, slots=True)
class _Source:
    code: str
    """The source with comments and string contents blanked out (same offsets)."""
    strings: list[tuple[int, str]]
    """String literals: offset of the opening quote, contents."""


def lint(files: dict[str, str], *, policy_file: str | None = None) -> list[Problem]:
    """Problems in ``files`` (name → source); ``policy_file`` is the module that must define ``deny``."""
    problems: list[Problem] = []
    for name, source in files.items():
        scanned = _scan(source)
        problems += _v0_rules(name, source, scanned)
        problems += _forbidden_calls(name, source, scanned)
        problems += _regex_dialect(name, source, scanned)
        if package_of(source) is None:
            problems.append(Problem("lint_package", "the module declares no package (package a.b.c)", name, 1, 1))
    if policy_file is not None and policy_file in files:
        source = files[policy_file]
        if not re.search(r"^deny\b", _scan(source).code, re.M):
            problems.append(
                Problem(
                    "lint_no_deny_rule",
                    "a policy must define `deny contains {...} if ...` (its enforced denials)",
                    policy_file,
                    1,
                    1,
                )
            )
    return problems


def _position(source: str, offset: int) -> tuple[int, int]:
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _scan(source: str) -> _Source:
    out = list(source)
    strings: list[tuple[int, str]] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "#":
            end = source.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif char == '"':
            j = i + 1
            while j < n and source[j] != '"' and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            strings.append((i, source[i + 1 : j]))
            out[i + 1 : j] = " " * (j - i - 1)
            i = j + 1
        elif char == "`":
            j = source.find("`", i + 1)
            j = n if j < 0 else j
            strings.append((i, source[i + 1 : j]))
            out[i + 1 : j] = [c if c == "\n" else " " for c in source[i + 1 : j]]
            i = j + 1
        else:
            i += 1
    return _Source("".join(out), strings)


def _v0_rules(name: str, source: str, scanned: _Source) -> list[Problem]:
    problems = []
    depth = 0
    offset = 0
    for line in scanned.code.split("\n"):
        stripped = line.strip()
        if depth == 0 and stripped and not stripped.startswith(("package", "import", "default")):
            match = _RULE_HEAD.match(stripped)
            if match is not None:
                head = stripped[: match.end()]
                words = set(re.findall(r"\b\w+\b", head))
                expr = (match.group("expr") or "").strip()
                # `x := {...}` is an object literal; `x := f({...})` opens the brace inside a call.
                literal = match.group("value") is not None and (
                    not expr or expr.count("(") != expr.count(")") or expr.count("[") != expr.count("]")
                )
                if not words & {"if", "contains", "else"} and not literal:
                    line_no, column = _position(source, offset + line.index(stripped[0]))
                    problems.append(
                        Problem(
                            "lint_v0_syntax",
                            f"rule `{match.group('name')}` uses Rego v0 syntax (a body without `if`"
                            f"{'/`contains`' if match.group('key') else ''}), which regopy silently reads "
                            f"differently from OPA: write `{_v1_head(match)} if {{ ... }}`",
                            name,
                            line_no,
                            column,
                        )
                    )
        depth += line.count("{") + line.count("[") + line.count("(")
        depth -= line.count("}") + line.count("]") + line.count(")")
        depth = max(depth, 0)
        offset += len(line) + 1
    return problems


def _v1_head(match: re.Match[str]) -> str:
    name = match.group("name")
    if match.group("key"):
        key = match.group("key").strip()[1:-1].strip()
        return (
            f"{name} contains {key}"
            if match.group("value") is None
            else f"{name}[{key}] := {match.group('expr').strip()}"
        )
    args = (match.group("args") or "").strip()
    if match.group("value") is not None:
        return f"{name}{args} := {match.group('expr').strip()}"
    return f"{name}{args}"


def _forbidden_calls(name: str, source: str, scanned: _Source) -> list[Problem]:
    problems = []
    for match in _CALL.finditer(scanned.code):
        called = match.group(1)
        for prefix, why in _FORBIDDEN.items():
            if called == prefix or (prefix.endswith(".") and called.startswith(prefix)):
                line, column = _position(source, match.start(1))
                problems.append(
                    Problem("lint_forbidden_builtin", f"`{called}` is not allowed: it {why}", name, line, column)
                )
                break
    return problems


def _regex_dialect(name: str, source: str, scanned: _Source) -> list[Problem]:
    if not re.search(r"\bregex\.", scanned.code):
        return []
    problems = []
    for offset, text in scanned.strings:
        for pattern, why in _RE2_ONLY:
            found = pattern.search(text)
            if found is not None:
                line, column = _position(source, offset + 1 + found.start())
                problems.append(Problem("lint_regex_dialect", why, name, line, column))
                break
    return problems
