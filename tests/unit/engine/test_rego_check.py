"""The strict check: each rule rejects its bad case with a location and accepts the good twin; the corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_server.engine.rego import check
from tests.conftest import ROOT

HEADER = "package policies.demo\n\nimport rego.v1\n\n"
CORPUS = ROOT / "tests" / "data" / "rego"

CASES = [
    # (code, bad line, good twin)
    ("lint_v0_syntax", 'deny[msg] {\n\tmsg := "x"\n}', 'deny contains msg if {\n\tmsg := "x"\n}'),
    ("lint_v0_syntax", "allow {\n\tinput.a\n}", "allow if {\n\tinput.a\n}"),
    ("lint_v0_syntax", "n = x {\n\tx := 1\n}", "n := x if {\n\tx := 1\n}"),
    ("lint_v0_syntax", "f(a) = b {\n\tb := a\n}", "f(a) := b if {\n\tb := a\n}"),
    ("lint_forbidden_builtin", "env := opa.runtime().env", 'env := {"none": true}'),
    ("lint_forbidden_builtin", 'x if print("hello")', 'x if "hello" != ""'),
    ("lint_forbidden_builtin", 'x if trace("hello")', 'x if "hello" != ""'),
    ("lint_forbidden_builtin", 'r := http.send({"method": "get", "url": "http://x"})', 'r := {"method": "get"}'),
    (
        "lint_forbidden_builtin",
        'r := x if { x := count({"url": "http://x"}) with count as http.send }',
        'r := x if { x := count({"url": "http://x"}) }',
    ),
    ("lint_forbidden_builtin", "r if { input.x with http.send as count }", "r if { input.x with input.y as 1 }"),
    ("lint_forbidden_builtin", 'ips := net.lookup_ip_addr("example.com")', 'ips := ["127.0.0.1"]'),
    ("lint_forbidden_builtin", "t := time.now_ns()", "t := input.now_ns"),
    ("lint_forbidden_builtin", 'n := rand.intn("seed", 10)', "n := 4"),
    ("lint_forbidden_builtin", 'u := uuid.rfc4122("x")', 'u := "x"'),
    ("lint_forbidden_builtin", "m := rego.metadata.rule()", "m := {}"),
    ("lint_forbidden_builtin", "ok if json.match_schema(input, {})", "ok if is_object(input)"),
    (
        "lint_regex_dialect",
        "x if regex.match(`(?i)^prod`, input.stage)",
        "x if regex.match(`^[Pp][Rr][Oo][Dd]`, input.stage)",
    ),
    (
        "lint_regex_dialect",
        'x if regex.match("^(?P<env>prod)$", input.stage)',
        'x if regex.match("^(prod)$", input.stage)',
    ),
    ("lint_regex_dialect", "x if regex.match(`\\Aprod\\z`, input.stage)", "x if regex.match(`^prod$`, input.stage)"),
    ("rego_unsafe_var_error", "x if { y > 1 }", "x if { y := 2; y > 1 }"),
    ("rego_type_error", "x if nosuch(1)", "x if abs(1)"),
    ("rego_type_error", 'x if count(5) > "a"', "x if count([5]) > 0"),
    ("rego_type_error", 'x := upper("a", "b", "c")', 'x := upper("a")'),
    ("rego_recursion_error", "x if x", "x if input.x"),
    ("rego_compile_error", "f(a, b) := a", "f(a, _) := a"),
    ("lint_unknown_reference", "x if data.inventory.items[_]", "x if input.inventory.items[_]"),
    ("lint_reserved_reference", "x := data.policy_server.entry", "x := data.policies.demo.deny"),
]


@pytest.mark.parametrize(("code", "bad", "good"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_rejects_bad_case_with_location_and_accepts_good_twin(code, bad, good):
    good_source = HEADER + "deny contains 1 if false\n\n" + good + "\n"
    assert check({"p.rego": good_source}, policy_files=["p.rego"]) == []

    bad_source = HEADER + "deny contains 1 if false\n\n" + bad + "\n"
    problems = check({"p.rego": bad_source}, policy_files=["p.rego"])
    assert [p.code for p in problems] == [code], problems
    problem = problems[0]
    assert problem.file == "p.rego"
    assert problem.line == 7  # the line of the bad snippet
    assert problem.column >= 1
    assert bad_source.splitlines()[problem.line - 1][problem.column - 1 :].strip()


def test_comments_and_strings_do_not_trigger_rules():
    source = HEADER + '# print("x") and opa.runtime() in a comment\ndeny contains "print(x) deny[msg] {" if false\n'
    assert check({"p.rego": source}, policy_files=["p.rego"]) == []


def test_a_module_without_package_and_a_policy_without_deny_are_rejected():
    (problem,) = check({"p.rego": "import rego.v1\n\nallow if true\n"}, policy_files=["p.rego"])
    assert (problem.code, problem.line) == ("lint_package", 1)
    (problem,) = check({"p.rego": HEADER + "allow if true\n"}, policy_files=["p.rego"])
    assert problem.code == "lint_no_deny_rule"
    # A test module is not a policy: no deny needed.
    assert check({"p_test.rego": HEADER + "test_x if true\n"}) == []


def test_reserved_and_foreign_packages_cannot_be_declared():
    for package in ("policy_server.entry.e1", "policy_server", "system", "system.authz"):
        source = f"package {package}\n\nimport rego.v1\n\ndeny contains 1 if false\n"
        assert [p.code for p in check({"p.rego": source}, policy_files=["p.rego"])] == ["reserved_package"]
    mine = HEADER + "deny contains 1 if false\n"
    overlapping = ["policies.demo", "policies", "policies.demo.inner"]
    for other in overlapping:
        assert [p.code for p in check({"p.rego": mine}, policy_files=["p.rego"], reserved=[other])] == [
            "package_in_use"
        ], other
    assert check({"p.rego": mine}, policy_files=["p.rego"], reserved=["policies.demo_other"]) == []


def test_a_builtin_the_embedded_engine_lacks_is_rejected():
    source = HEADER + 'deny contains 1 if net.cidr_contains("10.0.0.0/8", input.ip)\n'
    # net.* is forbidden anyway; an ordinary builtin that an engine lacks is named as such.
    source = HEADER + 'deny contains 1 if strings.split_n("a.b", ".", 1)\n'
    problems = check({"p.rego": source}, policy_files=["p.rego"], available=lambda name: name != "strings.split_n")
    assert [p.code for p in problems] == ["lint_unsupported_builtin"]


def test_pathologically_nested_source_is_a_located_problem_not_a_crash():
    source = HEADER + "deny contains 1 if " + "[" * 5000 + "]" * 5000 + "\n"
    (problem,) = check({"p.rego": source}, policy_files=["p.rego"])
    assert problem.code == "rego_parse_error" and problem.line == 5


def corpus(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).glob("*.rego"))


def expectation(path: Path) -> tuple[str, str]:
    """The code a corpus policy must be rejected with, and whether OPA rejects it too."""
    lines = path.read_text().splitlines()
    return lines[0].removeprefix("# expect: "), lines[1].removeprefix("# opa: ")


def test_the_corpus_is_large_enough():
    assert len(corpus("invalid")) >= 40 and len(corpus("valid")) >= 20


@pytest.mark.parametrize("path", corpus("invalid"), ids=lambda p: p.stem)
def test_every_invalid_or_dangerous_policy_is_rejected_with_its_code_and_place(path):
    code, _ = expectation(path)
    source = path.read_text()
    problems = check({path.name: source}, policy_files=[path.name])
    assert code in {p.code for p in problems}, problems
    for problem in problems:
        assert problem.file == path.name and problem.line and problem.column, problem
        assert 1 <= problem.line <= source.count("\n") + 1


@pytest.mark.parametrize("path", corpus("valid"), ids=lambda p: p.stem)
def test_every_valid_policy_is_accepted(path):
    assert check({path.name: path.read_text()}, policy_files=[path.name]) == []


def test_the_built_in_policies_pass_the_strict_check():
    for directory in sorted((ROOT / "policies").iterdir()):
        if (directory / "policy.rego").is_file():
            files = {f"{directory.name}/{f.name}": f.read_text() for f in directory.glob("*.rego")}
            assert check(files, policy_files=[f"{directory.name}/policy.rego"]) == [], directory.name
