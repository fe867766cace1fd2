"""A parser for Rego v1 (the syntax OPA 1.x accepts by default) into ``_ast``, with positions.

It follows OPA's grammar and precedence (``:=``/``=`` < ``in`` < comparisons < ``|`` < ``&`` < ``+ -`` <
``* / %``), ends a literal at ``;`` or at a token on a new line, and reads Rego v0 rule bodies as errors
with a hint, as OPA 1.x does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from policy_server.engine.rego._ast import (
    Array,
    BinOp,
    Call,
    Comprehension,
    Every,
    Expr,
    Import,
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

KEYWORDS = {
    "package", "import", "as", "default", "if", "contains", "else", "some", "every", "in", "not", "with",
    "true", "false", "null",
}  # fmt: skip
_MAX_DEPTH = 64
_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<number>(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<badstring>"[^\n]*)
  | (?P<raw>`[^`]*`)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:=|==|!=|<=|>=|[<>=+\-*/%&|()\[\]{},;.:])
    """,
    re.X,
)


class RegoSyntaxError(Exception):
    """The source does not parse; ``code`` is ``rego_parse_error`` or ``lint_v0_syntax``."""

    def __init__(self, message: str, pos: Pos, code: str = "rego_parse_error") -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.code = code


@dataclass(slots=True)
class Token:
    kind: str
    """``number``, ``string``, ``raw``, ``ident``, ``op`` or ``eof``."""
    text: str
    pos: Pos
    newline: bool
    """A newline (or the start of the file) separates this token from the one before."""
    end: Pos


def tokenize(source: str) -> list[Token]:
    """Tokens of ``source`` (comments and whitespace dropped, newlines noted on the next token)."""
    tokens: list[Token] = []
    line, line_start, i, newline = 1, 0, 0, True
    length = len(source)
    while i < length:
        match = _TOKEN.match(source, i)
        if match is None:
            raise RegoSyntaxError(f"unexpected character {source[i]!r}", (line, i - line_start + 1))
        kind = match.lastgroup or ""
        text = match.group()
        pos = (line, i - line_start + 1)
        if kind == "newline":
            line, line_start, newline = line + 1, match.end(), True
        elif kind == "badstring":
            raise RegoSyntaxError("unterminated string", pos)
        elif kind not in ("ws", "comment"):
            end = (line, match.end() - line_start)
            if kind == "raw" and "\n" in text:
                line += text.count("\n")
                line_start = i + text.rfind("\n") + 1
                end = (line, match.end() - line_start)
            tokens.append(Token(kind, text, pos, newline, end))
            newline = False
        i = match.end()
    tokens.append(Token("eof", "", (line, i - line_start + 1), True, (line, i - line_start + 1)))
    return tokens


class Parser:
    """Recursive descent over the tokens of one module."""

    def __init__(self, file: str, source: str) -> None:
        self.file = file
        self.tokens = tokenize(source)
        self.i = 0
        self.depth = 0
        self.wildcards = 0
        self.recovered: list[RegoSyntaxError] = []
        """Problems the parser reported and read past (Rego v0 rules), so that the rest is still checked."""

    # --- tokens -------------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def at(self, text: str) -> bool:
        tok = self.tok
        return tok.text == text and tok.kind in ("op", "ident")

    def next(self) -> Token:
        tok = self.tok
        if tok.kind != "eof":
            self.i += 1
        return tok

    def expect(self, text: str, what: str | None = None) -> Token:
        if not self.at(text):
            self.fail(f"expected {what or repr(text)}, found {self.describe(self.tok)}")
        return self.next()

    def fail(self, message: str, pos: Pos | None = None, code: str = "rego_parse_error") -> None:
        raise RegoSyntaxError(message, pos or self.tok.pos, code)

    @staticmethod
    def describe(tok: Token) -> str:
        return "end of file" if tok.kind == "eof" else repr(tok.text)

    def ident(self, what: str = "a name") -> Token:
        tok = self.tok
        if tok.kind != "ident" or tok.text in KEYWORDS:
            self.fail(f"expected {what}, found {self.describe(tok)}")
        return self.next()

    # --- module -------------------------------------------------------------------------------------

    def module(self) -> Module:
        if not self.at("package"):
            self.fail("a module starts with `package a.b.c`", self.tok.pos, "lint_package")
        package_pos = self.next().pos
        package = self.dotted("a package name")
        imports: list[Import] = []
        while self.at("import"):
            pos = self.next().pos
            path = self.dotted("an import path")
            alias = None
            if self.at("as"):
                self.next()
                alias = self.ident("an import alias").text
            imports.append(Import(path, alias, pos))
        rules: list[Rule] = []
        while self.tok.kind != "eof":
            if not self.tok.newline:
                self.fail(f"unexpected {self.describe(self.tok)}: a rule starts on a new line")
            if self.at("import") or self.at("package"):
                self.fail(f"`{self.tok.text}` must come before the rules")
            rules += self.rule()
        return Module(self.file, package, package_pos, imports, rules)

    def dotted(self, what: str) -> list[str]:
        parts = [self.ident(what).text]
        while self.at(".") or self.at("["):
            if self.next().text == ".":
                parts.append(self.ident(what).text)
            else:
                tok = self.next()
                if tok.kind != "string":
                    self.fail(f"expected a string in brackets of {what}", tok.pos)
                parts.append(json.loads(tok.text))
                self.expect("]")
        return parts

    # --- rules --------------------------------------------------------------------------------------

    def rule(self) -> list[Rule]:
        start = self.tok.pos
        default = False
        if self.at("default"):
            self.next()
            default = True
        name_tok = self.ident("a rule name")
        path = [name_tok.text]
        head_refs: list[Term] = []
        key: Term | None = None
        while self.at(".") or (self.at("[") and not self.tok.newline):
            if self.next().text == ".":
                path.append(self.ident("a rule path").text)
            else:
                term = self.expr()
                self.expect("]")
                head_refs.append(term)
        args: list[Term] | None = None
        if self.at("(") and not self.tok.newline:
            self.next()
            args = []
            while not self.at(")"):
                args.append(self.term())
                if not self.at(","):
                    break
                self.next()
            self.expect(")", "')' closing the function's arguments")
        kind = "function" if args is not None else "complete"
        value: Term | None = None
        if self.at("contains"):
            if default or args is not None:
                self.fail("`contains` is for multi-value (set) rules")
            self.next()
            kind, key = "set", self.expr()
        elif self.at(":=") or self.at("="):
            self.next()
            value = self.expr()
        if head_refs and kind == "complete":
            # p[k] := v (object) or p[x] with no value: a multi-value rule written the v0 way
            key = head_refs.pop()
            kind = "object"
            if value is None:
                self.recovered.append(
                    RegoSyntaxError(
                        f"rule `{name_tok.text}` uses Rego v0 syntax (`{name_tok.text}[x]`), which regopy silently "
                        f"reads differently from OPA: write `{name_tok.text} contains x if {{ ... }}`",
                        start,
                        "lint_v0_syntax",
                    )
                )
                kind = "set"  # read on as the rule it means
        rule = Rule(path, kind, start, key=key, value=value, args=args, default=default, head_refs=head_refs)
        if default:
            if value is None:
                self.fail("a default rule needs a value (`default name := value`)", start)
            return [rule]
        rule.bodies = self.bodies(rule)
        rules = [rule]
        while self.at("else"):
            else_pos = self.next().pos
            branch = Rule(path, kind, else_pos, args=args, else_of=rule)
            if self.at(":=") or self.at("="):
                self.next()
                branch.value = self.expr()
            branch.bodies = self.bodies(branch)
            rules.append(branch)
        return rules

    def bodies(self, rule: Rule) -> list[list[Literal]]:
        if self.at("if"):
            self.next()
            if self.at("{"):
                out = [self.braced_body()]
            else:
                out = [[self.literal()]]
        elif self.at("{") and not self.tok.newline:
            head = ".".join(rule.path)
            if not any(p.code == "lint_v0_syntax" and p.pos == rule.pos for p in self.recovered):
                hint = (
                    f"write `{head} contains x if {{ ... }}`" if rule.kind == "set" else f"write `{head} if {{ ... }}`"
                )
                self.recovered.append(
                    RegoSyntaxError(
                        f"rule `{head}` uses Rego v0 syntax (a body without `if`), which regopy silently reads "
                        f"differently from OPA: {hint}",
                        rule.pos,
                        "lint_v0_syntax",
                    )
                )
            out = [self.braced_body()]  # read on as if `if` were there
        else:
            return []
        # OPA 1.x still accepts further bodies: `p if { a } { b }` (each an alternative)
        while self.at("{") and not self.tok.newline:
            out.append(self.braced_body())
        return out

    def braced_body(self) -> list[Literal]:
        self.expect("{")
        body = self.query("}")
        self.expect("}", "'}' closing the body")
        return body

    def query(self, closing: str) -> list[Literal]:
        body: list[Literal] = []
        while True:
            while self.at(";"):
                self.next()
            if self.at(closing) or self.tok.kind == "eof":
                break
            if body and not self.tok.newline and not (self.peek(-1).text == ";"):
                self.fail(f"unexpected {self.describe(self.tok)}: end the expression with a newline or `;`")
            body.append(self.literal())
        if not body:
            self.fail("a body needs at least one expression")
        return body

    # --- literals -----------------------------------------------------------------------------------

    def literal(self) -> Literal:
        pos = self.tok.pos
        if self.at("some"):
            self.next()
            literal = self.some(pos)
        elif self.at("every"):
            self.next()
            literal = self.every(pos)
        else:
            negated = False
            if self.at("not"):
                self.next()
                negated = True
            literal = Expr(self.expr(), pos, negated)
        withs = literal.withs if not isinstance(literal, SomeDecl) else None
        while self.at("with"):
            with_pos = self.next().pos
            if withs is None:
                self.fail("`with` cannot modify `some`", with_pos)
            target = self.term()
            self.expect("as")
            withs.append(With(target, self.term(), with_pos))  # type: ignore[union-attr]
        return literal

    def some(self, pos: Pos) -> SomeDecl | SomeIn:
        first = self.in_operand()
        terms = [first]
        while self.at(","):
            self.next()
            terms.append(self.in_operand())
        if self.at("in"):
            self.next()
            if len(terms) > 2:
                self.fail("`some k, v in xs` takes at most two variables", pos)
            collection = self.relation()
            key, value = (None, terms[0]) if len(terms) == 1 else (terms[0], terms[1])
            return SomeIn(key, value, collection, pos)
        names = []
        for term in terms:
            if not isinstance(term, Var):
                self.fail("`some` declares variables (or `some x in xs`)", _pos(term))
            names.append(term)  # type: ignore[arg-type]
        return SomeDecl(names, pos)

    def in_operand(self) -> Term:
        return self.relation()

    def every(self, pos: Pos) -> Every:
        first = self.ident("a variable").text
        first_pos = self.peek(-1).pos
        key: Var | None = None
        value = Var(first, first_pos)
        if self.at(","):
            self.next()
            second = self.ident("a variable")
            key, value = Var(first, first_pos), Var(second.text, second.pos)
        self.expect("in", "`in` after `every x`")
        domain = self.relation()
        self.expect("{", "'{' opening the body of `every`")
        body = self.query("}")
        self.expect("}", "'}' closing the body of `every`")
        for var in (key, value):
            if var is not None and var.name == "_":
                var.name, var.wildcard = self.fresh(), True
        return Every(key, value, domain, body, pos)

    # --- expressions --------------------------------------------------------------------------------

    def expr(self) -> Term:
        """``a := b``, ``a = b`` or anything looser (the top of the precedence ladder)."""
        left = self.membership()
        if self.at(":=") or self.at("="):
            op = self.next()
            right = self.membership()
            return BinOp(op.text, left, right, op.pos)
        return left

    def membership(self, allow_or: bool = True) -> Term:
        left = self.relation(allow_or)
        if self.at(",") and self._comma_in_ahead():
            self.next()
            value = self.relation(allow_or)
            in_tok = self.expect("in")
            return Member(left, value, self.relation(allow_or), in_tok.pos)
        while self.at("in"):
            in_tok = self.next()
            left = Member(None, left, self.relation(allow_or), in_tok.pos)
        return left

    def _comma_in_ahead(self) -> bool:
        """``k, v in xs`` at this level: a comma, one simple term, then ``in``."""
        j = self.i + 1
        if self.tokens[j].kind not in ("ident", "number", "string"):
            return False
        return self.tokens[j + 1].text == "in" and self.tokens[j + 1].kind == "ident"

    def relation(self, allow_or: bool = True) -> Term:
        left = self.bitor(allow_or)
        while self.tok.kind == "op" and self.tok.text in ("==", "!=", "<", ">", "<=", ">="):
            op = self.next()
            left = BinOp(op.text, left, self.bitor(allow_or), op.pos)
        return left

    def bitor(self, allow_or: bool = True) -> Term:
        left = self.bitand()
        while allow_or and self.at("|"):
            op = self.next()
            left = BinOp("|", left, self.bitand(), op.pos)
        return left

    def bitand(self) -> Term:
        left = self.arith()
        while self.at("&"):
            op = self.next()
            left = BinOp("&", left, self.arith(), op.pos)
        return left

    def arith(self) -> Term:
        left = self.factor()
        while self.at("+") or self.at("-"):
            op = self.next()
            left = BinOp(op.text, left, self.factor(), op.pos)
        return left

    def factor(self) -> Term:
        left = self.unary()
        while self.at("*") or self.at("/") or self.at("%"):
            op = self.next()
            left = BinOp(op.text, left, self.unary(), op.pos)
        return left

    def unary(self) -> Term:
        if self.at("-"):
            op = self.next()
            operand = self.unary()
            if (
                isinstance(operand, Scalar)
                and isinstance(operand.value, int | float)
                and not isinstance(operand.value, bool)
            ):
                return Scalar(-operand.value, op.pos)
            return Unary(operand, op.pos)
        return self.term()

    # --- terms --------------------------------------------------------------------------------------

    def term(self) -> Term:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail(f"nested deeper than {_MAX_DEPTH} levels")
        try:
            term = self.primary()
            return self.postfix(term)
        finally:
            self.depth -= 1

    def primary(self) -> Term:
        tok = self.tok
        if tok.kind == "number":
            self.next()
            text = tok.text
            return Scalar(float(text) if any(c in text for c in ".eE") else int(text), tok.pos)
        if tok.kind == "string":
            self.next()
            try:
                return Scalar(json.loads(tok.text), tok.pos)
            except json.JSONDecodeError:
                self.fail("invalid escape in string", tok.pos)
        if tok.kind == "raw":
            self.next()
            return Scalar(tok.text[1:-1], tok.pos, raw=True)
        if tok.kind == "ident":
            if tok.text in ("true", "false"):
                self.next()
                return Scalar(tok.text == "true", tok.pos)
            if tok.text == "null":
                self.next()
                return Scalar(None, tok.pos)
            if tok.text in KEYWORDS and not (tok.text == "contains" and self.peek().text == "("):
                self.fail(f"unexpected keyword `{tok.text}`")
            self.next()
            if tok.text == "_":
                return Var(self.fresh(), tok.pos, wildcard=True)
            return Var(tok.text, tok.pos)
        if tok.kind == "op":
            if tok.text == "(":
                self.next()
                inner = self.expr()
                self.expect(")", "')'")
                return inner
            if tok.text == "[":
                return self.array()
            if tok.text == "{":
                return self.brace()
        previous = self.peek(-1) if self.i else None
        if previous is not None and previous.kind == "op" and previous.text not in "()[]{},;":
            self.fail(f"expected a term after {previous.text!r}, found {self.describe(tok)}", previous.pos)
        self.fail(f"unexpected {self.describe(tok)}")
        raise AssertionError  # unreachable

    def fresh(self) -> str:
        self.wildcards += 1
        return f"_${self.wildcards}"

    def array(self) -> Term:
        pos = self.expect("[").pos
        if self.at("]"):
            self.next()
            return Array([], pos)
        first = self.membership(allow_or=False)
        if self.at("|"):
            self.next()
            body = self.query("]")
            self.expect("]", "']' closing the comprehension")
            return Comprehension("array", first, body, pos)
        items = [first]
        while self.at(","):
            self.next()
            if self.at("]"):
                break
            items.append(self.membership())
        self.expect("]", "']' closing the array")
        return Array(items, pos)

    def brace(self) -> Term:
        pos = self.expect("{").pos
        if self.at("}"):
            self.next()
            return Object([], pos)
        first = self.membership(allow_or=False)
        if self.at(":"):
            self.next()
            value = self.membership(allow_or=False)
            if self.at("|"):
                self.next()
                body = self.query("}")
                self.expect("}", "'}' closing the comprehension")
                return Comprehension("object", first, body, pos, value)
            items = [(first, value)]
            while self.at(","):
                self.next()
                if self.at("}"):
                    break
                key = self.membership()
                self.expect(":", "':' in an object")
                items.append((key, self.membership()))
            self.expect("}", "'}' closing the object")
            return Object(items, pos)
        if self.at("|"):
            self.next()
            body = self.query("}")
            self.expect("}", "'}' closing the comprehension")
            return Comprehension("set", first, body, pos)
        items = [first]
        while self.at(","):
            self.next()
            if self.at("}"):
                break
            items.append(self.membership())
        self.expect("}", "'}' closing the set")
        return Set(items, pos)

    def postfix(self, term: Term) -> Term:
        path: list[Term] = []
        while True:
            tok = self.tok
            if tok.text == "." and tok.kind == "op" and not tok.newline:
                self.next()
                name = self.tok
                if name.kind != "ident":
                    self.fail(f"expected a name after '.', found {self.describe(name)}")
                self.next()
                path.append(Scalar(name.text, name.pos))
            elif tok.text == "[" and tok.kind == "op" and not tok.newline:
                self.next()
                path.append(self.expr())
                self.expect("]", "']' closing the reference")
            elif tok.text == "(" and tok.kind == "op" and not tok.newline:
                target = Ref(term, path, _pos(term)) if path else term
                name = _call_name(target)
                if name is None:
                    self.fail("only names can be called", tok.pos)
                self.next()
                args: list[Term] = []
                while not self.at(")"):
                    args.append(self.expr())
                    if not self.at(","):
                        break
                    self.next()
                self.expect(")", "')' closing the call")
                if name == "set" and not args:
                    term = Set([], _pos(term))  # set(): the empty set
                    path = []
                    continue
                term = Call(name or "", _pos(term), args, _pos(term), target if isinstance(target, Ref | Var) else None)
                path = []
            else:
                break
        return Ref(term, path, _pos(term)) if path else term


def _call_name(term: Term) -> str | None:
    if isinstance(term, Var) and not term.wildcard:
        return term.name
    if isinstance(term, Ref) and isinstance(term.head, Var):
        parts = [term.head.name]
        for part in term.path:
            if not (isinstance(part, Scalar) and isinstance(part.value, str)):
                return None
            parts.append(part.value)
        return ".".join(parts)
    return None


def _pos(term: Term) -> Pos:
    return term.pos


def parse_module(file: str, source: str) -> Module:
    """The syntax tree of one module; raises ``RegoSyntaxError`` with a position (the first problem)."""
    module, recovered = parse_recovering(file, source)
    if recovered:
        raise recovered[0]
    return module


def parse_recovering(file: str, source: str) -> tuple[Module, list[RegoSyntaxError]]:
    """The syntax tree and the problems read past (Rego v0 rules); raises ``RegoSyntaxError`` for the others."""
    parser = Parser(file, source)
    module = parser.module()
    return module, parser.recovered
