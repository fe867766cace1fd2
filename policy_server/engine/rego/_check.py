"""The strict compile check: what ``opa check --strict`` rejects, plus policy-server's own rules.

OPA's rules: unsafe variables, undefined functions, arity and (coarse) type errors, recursion, conflicting
and multiple default rules; in strict mode also unused arguments, imports and assignments, declared but
unused variables, shadowed ``input``/``data``, duplicate imports and deprecated builtins. Ours: no
forbidden builtin referenced anywhere (a call, a ``with`` target or value), no builtin the embedded engine
lacks, no reserved or foreign package declared or read, no reference into data no module defines (no
data documents are loaded), ``deny``/``warn``/``abort`` as multi-value rules, and RE2-only regex syntax.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from policy_server.engine._diagnostics import Problem
from policy_server.engine.rego._ast import (
    Array,
    BinOp,
    Call,
    Comprehension,
    Every,
    Expr,
    Literal,
    Member,
    Module,
    Object,
    Pos,
    Ref,
    Rule,
    Scalar,
    Set,
    SomeDecl,
    SomeIn,
    Term,
    Unary,
    Var,
    With,
)
from policy_server.engine.rego._parser import RegoSyntaxError, parse_recovering
from policy_server.engine.rego._types import (
    ANY,
    BOOLEAN,
    INFIX,
    NULL,
    NUMBER,
    STRING,
    Builtin,
    Type,
    builtins,
    collection,
    compatible,
    union,
)

# Builtins a policy must not reference: they leak the service (environment, stdout, network), read the
# clock or randomness (decisions must replay), or are stubs in regopy that differ from OPA.
FORBIDDEN = {
    "opa.runtime": "returns the service's whole environment (database URLs, tokens)",
    "print": "writes to the service's stdout",
    "trace": "writes to the service's trace output",
    "http.send": "reaches the network (and is a stub in regopy)",
    "net.": "reaches the network or the resolver (and is a stub in regopy)",
    "time.now_ns": "reads the clock: use input.now_ns so that decisions replay",
    "rand.": "is random: decisions must replay",
    "uuid.rfc4122": "is random: decisions must replay",
    "uuid.parse": "is not supported by regopy",
    "rego.metadata.": "is not supported by regopy",
    "rego.parse_module": "exposes the compiler",
    "json.match_schema": "is a stub in regopy",
    "json.verify_schema": "is a stub in regopy",
    "strings.render_template": "is a stub in regopy",
    "graphql.": "is a stub in regopy",
    "io.jwt.decode_verify": "reads the clock when no time is given",
    "opa.": "exposes the service's runtime",
    "providers.": "reaches cloud providers",
    "crypto.x509.parse_and_verify_certificates": "reads the clock",
}
RESERVED_PACKAGES = (("policy_server",), ("system",))
_RE2_ONLY = [
    (re.compile(r"\(\?[imsU-]+\)|\(\?[imsU-]+:"), "inline flags like (?i) are RE2 syntax; regopy rejects them"),
    (re.compile(r"\(\?P?<[A-Za-z]"), "named groups are RE2 syntax; regopy rejects them"),
    (re.compile(r"\\[pP]\{?"), "Unicode classes (\\p{...}) are RE2 syntax; regopy does not support them"),
    (re.compile(r"\\[Az]"), "\\A and \\z are RE2 anchors; regopy reads them as letters: use ^ and $"),
]
CONTRACT_RULES = ("deny", "warn", "abort")
_IGNORED_IMPORTS = (("rego", "v1"), ("future", "keywords"))


def forbidden_reason(name: str) -> str | None:
    """Why a builtin (by dotted name) may not be referenced, or None."""
    for prefix, why in FORBIDDEN.items():
        if name == prefix or (prefix.endswith(".") and name.startswith(prefix)):
            return why
    return None


def check(
    modules: dict[str, str],
    *,
    policy_files: Sequence[str] = (),
    reserved: Sequence[str] = (),
    available: Callable[[str], bool] | None = None,
) -> list[Problem]:
    """Every problem in ``modules`` (file name → source), sorted by place; empty when they pass.

    ``policy_files`` are the modules that are policies (they must define ``deny`` and keep its contract).

    ``reserved`` are packages (dotted) of other policies: not to be declared, overlapped or read.
    ``available`` tells whether the embedded engine implements a builtin.
    """
    parsed: list[Module] = []
    problems: list[Problem] = []
    recovered: list[Problem] = []
    for file, source in modules.items():
        try:
            module, read_past = parse_recovering(file, source)
            parsed.append(module)
            recovered += [Problem(p.code, p.message, file, *p.pos) for p in read_past]
        except RegoSyntaxError as exc:
            problems.append(Problem(exc.code, exc.message, file, *exc.pos))
        except RecursionError:
            problems.append(Problem("rego_parse_error", "the module is nested too deeply", file, 1, 1))
    if problems:
        return sorted(problems, key=_place)
    program = _Program(parsed, [tuple(p.split(".")) for p in reserved if p], available)
    problems = recovered + program.run(set(policy_files))
    unique = {(p.file, p.line, p.column, p.code, p.message): p for p in problems}
    return sorted(unique.values(), key=_place)


def _place(p: Problem) -> tuple[str, int, int, str]:
    return (p.file or "", p.line or 0, p.column or 0, p.message)


@dataclass(slots=True)
class _RuleInfo:
    """Every definition of one rule (by package and name), with what the check learnt of it."""

    package: tuple[str, ...]
    name: str
    definitions: list[tuple[Module, Rule]] = field(default_factory=list)
    type: Type = ANY
    learned: bool = False
    depends: set[tuple[tuple[str, ...], str]] = field(default_factory=set)

    @property
    def path(self) -> str:
        return "data." + ".".join((*self.package, self.name))

    @property
    def function_arities(self) -> set[int]:
        return {len(r.args) for _, r in self.definitions if r.args is not None}


class _Program:
    """All modules checked together (a policy and its tests), as OPA compiles them together."""

    def __init__(
        self, modules: list[Module], reserved: list[tuple[str, ...]], available: Callable[[str], bool] | None
    ) -> None:
        self.modules = modules
        self.reserved = reserved
        self.available = available
        self.builtins = builtins()
        self.rules: dict[tuple[tuple[str, ...], str], _RuleInfo] = {}
        self.packages = {tuple(m.package) for m in modules}
        for module in modules:
            for rule in module.rules:
                key = (tuple(module.package), rule.name)
                info = self.rules.setdefault(key, _RuleInfo(key[0], rule.name))
                info.definitions.append((module, rule))
        self.problems: list[Problem] = []

    def report(self, code: str, message: str, file: str, pos: Pos) -> None:
        self.problems.append(Problem(code, message, file, pos[0], pos[1]))

    def run(self, policy_files: set[str]) -> list[Problem]:
        for module in self.modules:
            self._module_rules(module, module.file in policy_files)
        self._conflicts()
        # Two passes: the first learns each rule's type (silently), the second checks with them.
        for report in (False, True):
            for module in self.modules:
                for rule in module.rules:
                    _RuleChecker(self, module, rule, report).run()
        self._recursion()
        return self.problems

    # --- module level ---------------------------------------------------------------------------------

    def _module_rules(self, module: Module, is_policy: bool) -> None:
        package = tuple(module.package)
        name = ".".join(package)
        for reserved in RESERVED_PACKAGES:
            if package[: len(reserved)] == reserved:
                why = f"package {name} is reserved for policy-server and OPA ({'.'.join(reserved)}.*): choose another"
                self.report("reserved_package", why, module.file, module.package_pos)
        for other in self.reserved:
            if package[: len(other)] == other or other[: len(package)] == package:
                why = f"package {name} overlaps package {'.'.join(other)} of another policy: each policy needs its own"
                self.report("package_in_use", why, module.file, module.package_pos)
        names: dict[str, Pos] = {}
        for item in module.imports:
            if item.path[0] not in ("data", "input", "rego", "future"):
                self.report("rego_parse_error", "an import starts with data, input, rego or future", module.file,
                            item.pos)  # fmt: skip
            if item.path[0] == "data":
                self._data_reference(module.file, item.pos, [Scalar(p, item.pos) for p in item.path[1:]])
            if tuple(item.path) in _IGNORED_IMPORTS:
                continue
            if item.name in names:
                self.report("rego_compile_error", f"import must not shadow import {'.'.join(item.path)}",
                            module.file, item.pos)  # fmt: skip
            names[item.name] = item.pos
        used = _names_used(module)
        for item in module.imports:
            if tuple(item.path) not in _IGNORED_IMPORTS and item.name not in used:
                self.report("rego_compile_error", f"import {'.'.join(item.path)} unused", module.file, item.pos)
        if is_policy:
            if not any(r.name == "deny" for r in module.rules):
                self.report("lint_no_deny_rule", "a policy must define `deny contains {...} if ...` "
                            "(its enforced denials)", module.file, (1, 1))  # fmt: skip
            for rule in module.rules:
                if rule.name in CONTRACT_RULES and (rule.kind != "set" or len(rule.path) > 1):
                    self.report("lint_contract", f"`{rule.name}` must be a multi-value rule: "
                                f"`{rule.name} contains {{...}} if ...`", module.file, rule.pos)  # fmt: skip

    def _conflicts(self) -> None:
        for info in self.rules.values():
            kinds = {("function" if r.args is not None else r.kind) for _, r in info.definitions if not r.default}
            kinds |= {("function" if r.args is not None else "complete") for _, r in info.definitions if r.default}
            module, first = info.definitions[0]
            if len(kinds) > 1 or len(info.function_arities) > 1:
                self.report("rego_type_error", f"conflicting rules {info.path} found", module.file, first.pos)
            defaults = [(m, r) for m, r in info.definitions if r.default]
            if len(defaults) > 1:
                places = ", ".join(f"{m.file}:{r.pos[0]}" for m, r in defaults)
                self.report("rego_type_error", f"multiple default rules {info.path} found at {places}",
                            defaults[0][0].file, defaults[0][1].pos)  # fmt: skip

    def _recursion(self) -> None:
        graph = {key: info.depends & self.rules.keys() for key, info in self.rules.items()}
        for key, info in self.rules.items():
            cycle = _cycle_from(graph, key)
            if cycle:
                module, rule = info.definitions[0]
                names = " -> ".join(self.rules[k].path for k in cycle)
                self.report("rego_recursion_error", f"rule {info.path} is recursive: {names}", module.file, rule.pos)

    # --- references ------------------------------------------------------------------------------------

    def _data_reference(self, file: str, pos: Pos, path: list[Term]) -> tuple[tuple[str, ...], str] | None:
        """Check a reference ``data.<path>``; the rule it reaches (package, name) when it names one."""
        static = _static(path)
        for reserved in RESERVED_PACKAGES + tuple(self.reserved):
            if tuple(static[: len(reserved)]) == reserved:
                self.report("lint_reserved_reference", f"data.{'.'.join(reserved)} belongs to policy-server, OPA or "
                            "another policy: a policy reads only `input` and its own rules", file, pos)  # fmt: skip
                return None
        for package in sorted(self.packages, key=len, reverse=True):
            if tuple(static[: len(package)]) == package:
                if len(static) > len(package):
                    name = static[len(package)]
                    if (package, name) in self.rules:
                        return (package, name)
                    self.report("lint_unknown_reference", f"data.{'.'.join(static[: len(package) + 1])} is not "
                                f"defined by any module of this policy", file, pos)  # fmt: skip
                return None
        if not static or any(p[: len(static)] == tuple(static) for p in self.packages):
            return None  # plain `data`, data[x]…, or a prefix of a package: a subtree of rules
        self.report("lint_unknown_reference", f"data.{'.'.join(static)} is not defined by any module of this "
                    "policy (policy-server loads no data documents: policies read `input`)", file, pos)  # fmt: skip
        return None


def _cycle_from(graph: dict[tuple, set[tuple]], start: tuple) -> list[tuple] | None:
    """A path ``start -> … -> start`` in ``graph``, or None."""
    stack: list[tuple[tuple, Iterator[tuple]]] = [(start, iter(sorted(graph.get(start, ()))))]
    path = [start]
    seen = {start}
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            path.pop()
            continue
        if child == start:
            return [*path, start]
        if child not in seen:
            seen.add(child)
            stack.append((child, iter(sorted(graph.get(child, ())))))
            path.append(child)
    return None


class _Scope:
    """Variables of one body: which are safe (bound), their types, declarations and uses."""

    def __init__(self, parent: _Scope | None = None, safe: set[str] | None = None) -> None:
        self.parent = parent
        self.safe: set[str] = set(safe or ())
        self.types: dict[str, Type] = {}

    def is_safe(self, name: str) -> bool:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.safe:
                return True
            scope = scope.parent
        return False

    def type_of(self, name: str) -> Type | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.types:
                return scope.types[name]
            scope = scope.parent
        return None


class _RuleChecker:
    """Safety, types and strict-mode checks of one rule definition."""

    def __init__(self, program: _Program, module: Module, rule: Rule, report: bool) -> None:
        self.program = program
        self.module = module
        self.rule = rule
        self.reporting = report
        self.package = tuple(module.package)
        self.imports = {i.name: i for i in module.imports if tuple(i.path) not in _IGNORED_IMPORTS}
        self.rule_names = {name for (package, name) in program.rules if package == self.package}
        self.info = program.rules[(self.package, rule.name)]
        self.value_types: list[Type] = []

    def report(self, code: str, message: str, pos: Pos) -> None:
        if self.reporting:
            self.program.report(code, message, self.module.file, pos)

    def is_global(self, name: str) -> bool:
        return name in ("input", "data") or name in self.rule_names or name in self.imports

    # --- rule ----------------------------------------------------------------------------------------

    def run(self) -> None:
        rule = self.rule
        root = _Scope()
        for term in rule.head_refs:
            self.walk_refs(term, root)
        if rule.args is not None:
            for arg in rule.args:
                for var in _pattern_vars(arg):
                    self.shadow_check(var)
                    root.safe.add(var.name)
        head = [t for t in (rule.key, rule.value, *rule.head_refs) if t is not None]
        bodies = rule.bodies or [[]]
        for body in bodies:
            scope = _Scope(root)
            self.body(body, scope, head)
            for term in head:
                self.require_safe(term, scope)
            value = rule.value if rule.kind != "set" else rule.key
            value_type = self.type_of(value, scope) if value is not None else BOOLEAN
            self.value_types.append(value_type)
        if rule.default and rule.value is not None:
            for var in _vars(rule.value):
                self.report("rego_type_error", f"default rule value cannot contain var {var.name}", var.pos)
        if rule.args is not None and rule.else_of is None:
            # An else chain shares its arguments: used anywhere in it is used.
            chain = [rule, *(r for r in self.module.rules if r.else_of is rule)]
            used = {v.name for r in chain for body in r.bodies for lit in body for v in _all_vars_literal(lit)}
            used |= {v.name for r in chain for t in (r.key, r.value) if t is not None for v in _all_vars(t)}
            for arg in rule.args:
                for var in _pattern_vars(arg):
                    if not var.wildcard and var.name not in used:
                        self.report("rego_compile_error", f"unused argument {var.name}. (hint: use _ (wildcard "
                                    "variable) instead)", var.pos)  # fmt: skip
        if not self.reporting:
            self.learn_type()

    def learn_type(self) -> None:
        value = union(self.value_types)
        rule = self.rule
        if rule.kind == "set":
            value = collection("set", value)
        elif rule.kind == "object" or len(rule.path) > 1:
            value = collection("object")
        self.info.type = union([self.info.type, value]) if self.info.learned else value
        self.info.learned = True

    # --- bodies --------------------------------------------------------------------------------------

    def body(self, body: list[Literal], scope: _Scope, consumers: Sequence[Term] = ()) -> None:
        """Schedule the literals of a body as OPA does (each once its inputs are safe), reporting the rest."""
        for literal in body:
            if isinstance(literal, SomeDecl):
                for var in literal.names:
                    self.shadow_check(var)
        pending = list(body)
        outer_visible = self.visible_names(body, scope)
        while pending:
            progressed = False
            for literal in list(pending):
                needs, outputs = self.io(literal, scope, outer_visible)
                if all(scope.is_safe(n.name) or self.is_global(n.name) for n in needs):
                    self.bind(literal, scope, outputs)
                    pending.remove(literal)
                    progressed = True
            if not progressed:
                reported: set[str] = set()
                stuck = [(literal, *self.io(literal, scope, outer_visible)) for literal in pending]
                bound_later = {v.name for _, _, outputs in stuck for v in outputs}
                for strict in (True, False):  # variables nothing binds; else (a cycle) every one still needed
                    for _, needs, _ in stuck:
                        for var in needs:
                            name = var.name
                            if scope.is_safe(name) or self.is_global(name) or name in reported:
                                continue
                            if strict and name in bound_later:
                                continue
                            reported.add(name)
                            self.report("rego_unsafe_var_error", f"var {'_' if var.wildcard else name} is unsafe",
                                        var.pos)  # fmt: skip
                    if reported:
                        break
                # What the stuck literals would bind is taken as bound: one unsafe variable, one report.
                for literal, _, outputs in stuck:
                    self.bind(literal, scope, outputs)
                break
        self.unused_locals(body, consumers)

    def visible_names(self, body: list[Literal], scope: _Scope) -> set[str]:
        """Names a comprehension in ``body`` shares with it (closure variables) rather than owns."""
        names = {v.name for lit in body for v in _vars_literal(lit)}
        scope_chain: _Scope | None = scope
        while scope_chain is not None:
            names |= scope_chain.safe
            scope_chain = scope_chain.parent
        return names

    def io(self, literal: Literal, scope: _Scope, visible: set[str]) -> tuple[list[Var], list[Var]]:
        """What a literal needs safe first, and the variables it binds."""
        needs: list[Var] = []
        outputs: list[Var] = []
        if isinstance(literal, SomeDecl):
            return [], []
        if isinstance(literal, SomeIn):
            self.term_io(literal.collection, scope, visible, needs, outputs)
            for term in (literal.key, literal.value):
                if term is not None:
                    self.pattern_io(term, scope, visible, needs, outputs)
        elif isinstance(literal, Every):
            # binds nothing outside: its domain and the closure variables of its body must be safe
            needs += self.all_needed(literal.domain, scope, visible)
            own = {v.name for v in (literal.key, literal.value) if v is not None}
            needs += self.closure_needs_body(literal.body, visible, own)
        elif isinstance(literal, Expr):
            if literal.negated:
                for var in self.all_needed(literal.term, scope, visible):
                    needs.append(var)
            else:
                self.expr_io(literal.term, scope, visible, needs, outputs)
        for item in getattr(literal, "withs", []):
            if not self.is_function_reference(item.value, scope):
                needs += self.all_needed(item.value, scope, visible)
        out_names = {o.name for o in outputs}
        return [n for n in needs if n.name not in out_names], outputs

    def expr_io(self, term: Term, scope: _Scope, visible: set[str], needs: list[Var], outputs: list[Var]) -> None:
        if isinstance(term, BinOp) and term.op == ":=":
            self.term_io(term.right, scope, visible, needs, outputs)
            for var in _pattern_vars(term.left):
                outputs.append(var)
            self.pattern_needs(term.left, scope, visible, needs)
            return
        if isinstance(term, BinOp) and term.op == "=":
            self.unify_io(term.left, term.right, scope, visible, needs, outputs)
            return
        if isinstance(term, Call):
            builtin, arity = self.callee(term)
            if arity is not None and len(term.args) == arity + 1:
                for arg in term.args[:-1]:
                    self.term_io(arg, scope, visible, needs, outputs)
                self.pattern_io(term.args[-1], scope, visible, needs, outputs)
                return
        self.term_io(term, scope, visible, needs, outputs)

    def unify_io(
        self, left: Term, right: Term, scope: _Scope, visible: set[str], needs: list[Var], outputs: list[Var]
    ) -> None:
        if isinstance(left, Array) and isinstance(right, Array) and len(left.items) == len(right.items):
            for a, b in zip(left.items, right.items, strict=True):
                self.unify_io(a, b, scope, visible, needs, outputs)
            return
        # One side is known (every variable safe): the other side's plain variables are bound by it.
        for target, source in ((left, right), (right, left)):
            source_needs: list[Var] = []
            source_outputs: list[Var] = []
            self.term_io(source, scope, visible, source_needs, source_outputs)
            if all(scope.is_safe(v.name) or self.is_global(v.name) for v in source_needs):
                needs += source_needs
                outputs += source_outputs
                self.pattern_io(target, scope, visible, needs, outputs)
                return
        # Neither is known yet: needs everything (reported if it never becomes safe)
        self.term_io(left, scope, visible, needs, outputs)
        self.term_io(right, scope, visible, needs, outputs)

    def pattern_io(self, term: Term, scope: _Scope, visible: set[str], needs: list[Var], outputs: list[Var]) -> None:
        """A term in an output position: its unbound plain variables are bound; refs and calls are inputs."""
        if isinstance(term, Var):
            if not scope.is_safe(term.name) and not self.is_global(term.name):
                outputs.append(term)
            return
        if isinstance(term, Array):
            for item in term.items:
                self.pattern_io(item, scope, visible, needs, outputs)
            return
        if isinstance(term, Object):
            for key, value in term.items:
                self.term_io(key, scope, visible, needs, outputs)
                self.pattern_io(value, scope, visible, needs, outputs)
            return
        self.term_io(term, scope, visible, needs, outputs)

    def pattern_needs(self, term: Term, scope: _Scope, visible: set[str], needs: list[Var]) -> None:
        if isinstance(term, Object):
            for key, _ in term.items:
                needs += self.all_needed(key, scope, visible)
        elif isinstance(term, Array):
            for item in term.items:
                self.pattern_needs(item, scope, visible, needs)

    def term_io(self, term: Term, scope: _Scope, visible: set[str], needs: list[Var], outputs: list[Var]) -> None:
        """An input term: variables it needs; variables in reference brackets are bound by iteration."""
        if isinstance(term, Var):
            needs.append(term)
        elif isinstance(term, Ref):
            self.term_io(term.head, scope, visible, needs, outputs)
            for part in term.path:
                if isinstance(part, Var) and not scope.is_safe(part.name) and not self.is_global(part.name):
                    outputs.append(part)
                elif not (isinstance(part, Scalar)):
                    self.term_io(part, scope, visible, needs, outputs)
        elif isinstance(term, Comprehension):
            needs += self.closure_needs(term, scope, visible)
        else:
            for child in _children(term):
                self.term_io(child, scope, visible, needs, outputs)

    def all_needed(self, term: Term, scope: _Scope, visible: set[str]) -> list[Var]:
        needs: list[Var] = []
        outputs: list[Var] = []
        self.term_io(term, scope, visible, needs, outputs)
        return needs + outputs

    def closure_needs(self, compr: Comprehension, scope: _Scope, visible: set[str]) -> list[Var]:
        heads = [compr.term] + ([compr.value] if compr.value is not None else [])
        inner = [v for lit in compr.body for v in _all_vars_literal(lit)] + [v for t in heads for v in _all_vars(t)]
        return [v for v in inner if v.name in visible and not self.is_global(v.name)]

    def closure_needs_body(self, body: list[Literal], visible: set[str], own: set[str]) -> list[Var]:
        inner = [v for lit in body for v in _all_vars_literal(lit)]
        return [v for v in inner if v.name in visible and v.name not in own and not self.is_global(v.name)]

    def bind(self, literal: Literal, scope: _Scope, outputs: list[Var]) -> None:
        """A literal scheduled: its variables are safe from here, and what it says is checked."""
        for var in outputs:
            self.shadow_check(var)
            scope.safe.add(var.name)
        if isinstance(literal, SomeIn):
            self.walk_refs(literal.collection, scope)
            element = self.type_of(literal.collection, scope)
            if element.elem is not None and literal.key is None and isinstance(literal.value, Var):
                scope.types.setdefault(literal.value.name, element.elem)
        elif isinstance(literal, Every):
            self.walk_refs(literal.domain, scope)
            inner = _Scope(scope, {v.name for v in (literal.key, literal.value) if v is not None})
            self.body(literal.body, inner)
        elif isinstance(literal, Expr):
            self.walk_refs(literal.term, scope)
            self.learn(literal.term, scope)
            if (
                isinstance(literal.term, BinOp)
                and literal.term.op in (":=", "=")
                and isinstance(literal.term.left, Var)
            ):
                if literal.term.op == ":=" and literal.term.left.name in ("input", "data"):
                    self.shadow_check(literal.term.left)
        for item in getattr(literal, "withs", []):
            self.with_check(item, scope)

    def learn(self, term: Term, scope: _Scope) -> None:
        """Types of variables a literal binds."""
        if isinstance(term, BinOp) and term.op in (":=", "=") and isinstance(term.left, Var):
            if term.left.name not in scope.types:
                scope.types[term.left.name] = self.type_of(term.right, scope)
        elif isinstance(term, Call) and isinstance(term.args[-1:] and term.args[-1], Var):
            builtin, arity = self.callee(term)
            if builtin is not None and arity is not None and len(term.args) == arity + 1:
                scope.types[term.args[-1].name] = builtin.result  # type: ignore[union-attr]

    def unused_locals(self, body: list[Literal], consumers: Sequence[Term]) -> None:
        counts: dict[str, int] = {}
        for literal in body:
            for var in _all_vars_literal(literal):
                counts[var.name] = counts.get(var.name, 0) + 1
        for term in consumers:
            for var in _all_vars(term):
                counts[var.name] = counts.get(var.name, 0) + 1
        for literal in body:
            if isinstance(literal, SomeDecl):
                for var in literal.names:
                    if counts.get(var.name, 0) <= 1:
                        self.report("rego_compile_error", f"declared var {var.name} unused", var.pos)
            elif isinstance(literal, Expr) and isinstance(literal.term, BinOp) and literal.term.op == ":=":
                for var in _pattern_vars(literal.term.left):
                    if not var.wildcard and counts.get(var.name, 0) <= 1:
                        self.report("rego_compile_error", f"assigned var {var.name} unused", var.pos)

    def shadow_check(self, var: Var) -> None:
        if var.name in ("input", "data"):
            self.report("rego_compile_error", f"variables must not shadow {var.name} (use a different variable "
                        "name)", var.pos)  # fmt: skip

    def require_safe(self, term: Term, scope: _Scope) -> None:
        for var in self.all_needed(term, scope, set()):
            if not scope.is_safe(var.name) and not self.is_global(var.name):
                self.report("rego_unsafe_var_error", f"var {'_' if var.wildcard else var.name} is unsafe", var.pos)
        self.walk_refs(term, scope)

    # --- references, calls, types --------------------------------------------------------------------

    def walk_refs(self, term: Term, scope: _Scope) -> None:
        """Check every reference and call in ``term``: forbidden, reserved, unknown, arity, types, recursion."""
        for node in _walk(term):
            if isinstance(node, Call):
                self.call_check(node, scope)
            elif isinstance(node, Ref):
                self.ref_check(node, scope)
            elif isinstance(node, Var):
                self.var_check(node, scope)
            elif isinstance(node, BinOp) and node.op in INFIX:
                self.operator_check(node, scope)
            elif isinstance(node, Comprehension):
                inner = _Scope(scope)
                self.body(node.body, inner, [t for t in (node.term, node.value) if t is not None])
                for head in (node.term, node.value):
                    if head is not None:
                        self.require_safe(head, inner)

    def var_check(self, var: Var, scope: _Scope) -> None:
        if scope.is_safe(var.name):
            return
        if var.name in self.rule_names:
            self.info.depends.add((self.package, var.name))
        elif var.name in self.imports:
            self.import_reference(var.name, [], var.pos)

    def ref_check(self, ref: Ref, scope: _Scope) -> None:
        head = ref.head
        if not isinstance(head, Var) or scope.is_safe(head.name):
            return
        dotted = _dotted(ref)
        if dotted is not None:
            why = forbidden_reason(dotted)
            if why is not None:
                self.report("lint_forbidden_builtin", f"`{dotted}` is not allowed: it {why}", ref.pos)
        if head.name == "data":
            target = self.program._data_reference(self.module.file, ref.pos, ref.path) if self.reporting else \
                self._silent_data_reference(ref.path)  # fmt: skip
            if target is not None:
                self.info.depends.add(target)
        elif head.name in self.imports:
            self.import_reference(head.name, ref.path, ref.pos)

    def _silent_data_reference(self, path: list[Term]) -> tuple[tuple[str, ...], str] | None:
        static = _static(path)
        for package in self.program.packages:
            if tuple(static[: len(package)]) == package and len(static) > len(package):
                if (package, static[len(package)]) in self.program.rules:
                    return (package, static[len(package)])
        return None

    def import_reference(self, name: str, path: list[Term], pos: Pos) -> None:
        item = self.imports[name]
        if item.path[0] == "data":
            full = [Scalar(p, pos) for p in item.path[1:]] + list(path)
            target = self._silent_data_reference(full)
            if target is not None:
                self.info.depends.add(target)

    def is_function_reference(self, term: Term, scope: _Scope) -> bool:
        """A ``with`` value naming a builtin or a function (``with count as mock_count``), not a value."""
        dotted = _dotted(term)
        if dotted is None or scope.is_safe(dotted.split(".")[0]):
            return False
        return (
            dotted in self.program.builtins
            or forbidden_reason(dotted) is not None
            or bool((info := self.resolve_function(dotted)) is not None and info.function_arities)
        )

    def with_check(self, item: With, scope: _Scope) -> None:
        for term in (item.target, item.value):
            dotted = _dotted(term)
            if dotted is not None:
                why = forbidden_reason(dotted)
                if why is not None:
                    self.report("lint_forbidden_builtin", f"`{dotted}` is not allowed (here in `with`): it {why}",
                                item.pos)  # fmt: skip
        if not self.is_function_reference(item.value, scope):
            self.walk_refs(item.value, scope)
        target = _dotted(item.target)
        if target is not None and target.split(".")[0] not in ("input", "data") and target not in self.program.builtins:
            if self.resolve_function(target) is None:
                self.report("rego_type_error", f"with keyword target {target} must reference existing input, data, "
                            "or a function", item.pos)  # fmt: skip

    def callee(self, call: Call) -> tuple[Builtin | None, int | None]:
        """The builtin called (or None) and the arity of what is called (None when unknown)."""
        builtin = self.program.builtins.get(call.name)
        if builtin is not None and call.name.split(".")[0] not in self.rule_names | set(self.imports):
            return builtin, builtin.arity
        info = self.resolve_function(call.name)
        if info is not None:
            arities = info.function_arities
            return None, next(iter(arities)) if len(arities) == 1 else None
        return None, None

    def resolve_function(self, name: str) -> _RuleInfo | None:
        parts = name.split(".")
        if len(parts) == 1:
            return self.program.rules.get((self.package, parts[0]))
        if parts[0] == "data":
            for package in self.program.packages:
                if tuple(parts[1:-1]) == package:
                    return self.program.rules.get((package, parts[-1]))
            return None
        if parts[0] in self.imports and self.imports[parts[0]].path[0] == "data":
            return self.resolve_function(".".join(["data", *self.imports[parts[0]].path[1:], *parts[1:]]))
        return None

    def call_check(self, call: Call, scope: _Scope) -> None:
        why = forbidden_reason(call.name)
        if why is not None:
            self.report("lint_forbidden_builtin", f"`{call.name}` is not allowed: it {why}", call.name_pos)
            return
        if call.target is not None and isinstance(call.target, Ref) and isinstance(call.target.head, Var):
            if call.target.head.name == "data":
                target = self.program._data_reference(self.module.file, call.pos, call.target.path) \
                    if self.reporting else self._silent_data_reference(call.target.path)  # fmt: skip
                if target is not None:
                    self.info.depends.add(target)
        builtin, arity = self.callee(call)
        if builtin is not None:
            if builtin.deprecated:
                self.report("rego_type_error", f"deprecated built-in function calls in expression: {call.name}",
                            call.pos)  # fmt: skip
            if self.available is not None and not self.available(call.name):
                self.report("lint_unsupported_builtin", f"`{call.name}` is not implemented by the embedded engine "
                            "(regopy): decisions would fail", call.name_pos)  # fmt: skip
            if not builtin.variadic and len(call.args) not in (builtin.arity, builtin.arity + 1):
                self.report("rego_type_error", f"{call.name}: arity mismatch", call.pos)
                return
            for arg, expected in zip(call.args, builtin.args, strict=False):
                if not compatible(self.type_of(arg, scope), expected):
                    self.report("rego_type_error", f"{call.name}: invalid argument(s)", call.pos)
                    break
            if call.name.startswith("regex."):
                self.regex_check(call)
            return
        info = self.resolve_function(call.name)
        if info is None or not info.function_arities:
            self.report("rego_type_error", f"undefined function {call.name}", call.name_pos)
            return
        self.info.depends.add((info.package, info.name))
        if len(info.function_arities) == 1 and len(call.args) not in (arity, (arity or 0) + 1):
            self.report("rego_type_error", f"function {info.path} has arity {arity}, got {len(call.args)} arguments",
                        call.pos)  # fmt: skip

    @property
    def available(self) -> Callable[[str], bool] | None:
        return self.program.available

    def operator_check(self, node: BinOp, scope: _Scope) -> None:
        builtin = self.program.builtins.get(INFIX[node.op])
        if builtin is None:
            return
        for arg, expected in zip((node.left, node.right), builtin.args, strict=False):
            if not compatible(self.type_of(arg, scope), expected):
                self.report("rego_type_error", f"{builtin.name}: invalid argument(s)", node.pos)
                return

    def regex_check(self, call: Call) -> None:
        for arg in call.args:
            if isinstance(arg, Scalar) and isinstance(arg.value, str):
                for pattern, why in _RE2_ONLY:
                    if pattern.search(arg.value):
                        self.report("lint_regex_dialect", why, arg.pos)
                        break

    def type_of(self, term: Term | None, scope: _Scope) -> Type:
        if term is None:
            return ANY
        if isinstance(term, Scalar):
            value = term.value
            if value is None:
                return NULL
            if isinstance(value, bool):
                return BOOLEAN
            if isinstance(value, int | float):
                return NUMBER
            return STRING
        if isinstance(term, Var):
            known = scope.type_of(term.name)
            if known is not None:
                return known
            if not scope.is_safe(term.name) and term.name in self.rule_names:
                return self.program.rules[(self.package, term.name)].type
            return ANY
        if isinstance(term, Array):
            return collection("array", union([self.type_of(t, scope) for t in term.items]) if term.items else None)
        if isinstance(term, Set):
            return collection("set", union([self.type_of(t, scope) for t in term.items]) if term.items else None)
        if isinstance(term, Object):
            return collection("object")
        if isinstance(term, Comprehension):
            return collection(term.kind)
        if isinstance(term, Unary):
            return NUMBER
        if isinstance(term, Member):
            return BOOLEAN
        if isinstance(term, BinOp):
            if term.op in (":=", "="):
                return BOOLEAN
            builtin = self.program.builtins.get(INFIX.get(term.op, ""))
            return builtin.result if builtin is not None else ANY
        if isinstance(term, Call):
            builtin, _ = self.callee(term)
            if builtin is not None:
                return builtin.result
            info = self.resolve_function(term.name)
            return info.type if info is not None else ANY
        if isinstance(term, Ref):
            if isinstance(term.head, Var) and term.head.name == "data":
                target = self._silent_data_reference(term.path)
                if target is not None and len(_static(term.path)) == len(target[0]) + 1:
                    return self.program.rules[target].type
            return ANY
        return ANY


# --- syntax tree walks ---------------------------------------------------------------------------------


def _children(term: Term) -> list[Term]:
    if isinstance(term, Ref):
        return [term.head, *term.path]
    if isinstance(term, Call):
        return list(term.args)
    if isinstance(term, Array | Set):
        return list(term.items)
    if isinstance(term, Object):
        return [t for item in term.items for t in item]
    if isinstance(term, BinOp):
        return [term.left, term.right]
    if isinstance(term, Member):
        return [t for t in (term.key, term.value, term.collection) if t is not None]
    if isinstance(term, Unary):
        return [term.term]
    return []


def _walk(term: Term) -> Iterator[Term]:
    """``term`` and every term inside it, not entering comprehensions (yielded, their bodies are checked apart)."""
    stack = [term]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, Comprehension):
            stack.extend(reversed(_children(node)))


def _vars(term: Term) -> list[Var]:
    return [n for n in _walk(term) if isinstance(n, Var)]


def _all_vars(term: Term) -> list[Var]:
    """Every variable in ``term``, comprehensions included."""
    out = []
    for node in _walk(term):
        if isinstance(node, Var):
            out.append(node)
        elif isinstance(node, Comprehension):
            for head in (node.term, node.value):
                if head is not None:
                    out += _all_vars(head)
            for literal in node.body:
                out += _all_vars_literal(literal)
    return out


def _literal_terms(literal: Literal) -> list[Term]:
    if isinstance(literal, Expr):
        terms = [literal.term]
    elif isinstance(literal, SomeDecl):
        terms = list(literal.names)
    elif isinstance(literal, SomeIn):
        terms = [t for t in (literal.key, literal.value, literal.collection) if t is not None]
    else:
        terms = [t for t in (literal.key, literal.value, literal.domain) if t is not None]
    for item in getattr(literal, "withs", []):
        terms.append(item.value)
    return terms


def _vars_literal(literal: Literal) -> list[Var]:
    """Variables of a literal outside its comprehensions (and outside an ``every`` body)."""
    return [v for t in _literal_terms(literal) for v in _vars(t)]


def _all_vars_literal(literal: Literal) -> list[Var]:
    out = [v for t in _literal_terms(literal) for v in _all_vars(t)]
    if isinstance(literal, Every):
        for inner in literal.body:
            out += _all_vars_literal(inner)
    return out


def _names_used(module: Module) -> set[str]:
    """Every name a module's rules mention (variables, and the heads of called references)."""
    names: set[str] = set()
    for rule in module.rules:
        terms = [t for t in (rule.key, rule.value, *(rule.args or []), *rule.head_refs) if t is not None]
        terms += [t for body in rule.bodies for lit in body for t in _literal_terms_deep(lit)]
        for term in terms:
            for var in _all_vars(term):
                names.add(var.name)
            for node in _walk_deep(term):
                if isinstance(node, Call) and node.target is not None:
                    head = node.target.head if isinstance(node.target, Ref) else node.target
                    if isinstance(head, Var):
                        names.add(head.name)
    return names


def _literal_terms_deep(literal: Literal) -> list[Term]:
    terms = _literal_terms(literal) + [item.target for item in getattr(literal, "withs", [])]
    if isinstance(literal, Every):
        terms += [t for inner in literal.body for t in _literal_terms_deep(inner)]
    return terms


def _walk_deep(term: Term) -> Iterator[Term]:
    for node in _walk(term):
        yield node
        if isinstance(node, Comprehension):
            for head in (node.term, node.value):
                if head is not None:
                    yield from _walk_deep(head)
            for literal in node.body:
                for inner in _literal_terms_deep(literal):
                    yield from _walk_deep(inner)


def _pattern_vars(term: Term) -> list[Var]:
    """Plain variables in a pattern (``x``, ``[a, b]``, ``{"k": v}``)."""
    if isinstance(term, Var):
        return [term]
    if isinstance(term, Array):
        return [v for item in term.items for v in _pattern_vars(item)]
    if isinstance(term, Object):
        return [v for _, value in term.items for v in _pattern_vars(value)]
    return []


def _static(path: list[Term]) -> list[str]:
    out = []
    for part in path:
        if not (isinstance(part, Scalar) and isinstance(part.value, str)):
            break
        out.append(part.value)
    return out


def _dotted(term: Term) -> str | None:
    """``a.b.c`` for a variable or a reference made of names only."""
    if isinstance(term, Var) and not term.wildcard:
        return term.name
    if isinstance(term, Ref) and isinstance(term.head, Var):
        parts = _static(term.path)
        if len(parts) == len(term.path):
            return ".".join([term.head.name, *parts])
    return None
