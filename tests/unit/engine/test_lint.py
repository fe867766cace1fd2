"""Each lint rule rejects its bad case with a location and accepts the good twin."""

from __future__ import annotations

import pytest

from policy_server.engine._lint import lint

HEADER = "package policies.demo\n\nimport rego.v1\n\n"

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
]


@pytest.mark.parametrize(("code", "bad", "good"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_rejects_bad_case_with_location_and_accepts_good_twin(code, bad, good):
    good_source = HEADER + "deny contains 1 if false\n\n" + good + "\n"
    assert lint({"p.rego": good_source}, policy_file="p.rego") == []

    bad_source = HEADER + "deny contains 1 if false\n\n" + bad + "\n"
    problems = lint({"p.rego": bad_source}, policy_file="p.rego")
    assert [p.code for p in problems] == [code], problems
    problem = problems[0]
    assert problem.file == "p.rego"
    assert problem.line == 7  # the line of the bad snippet
    assert problem.column >= 1
    assert bad_source.splitlines()[problem.line - 1][problem.column - 1 :].strip()


def test_comments_and_strings_do_not_trigger_rules():
    source = HEADER + '# print("x") and opa.runtime() in a comment\ndeny contains "print(x) deny[msg] {" if false\n'
    assert lint({"p.rego": source}, policy_file="p.rego") == []


def test_a_policy_without_deny_or_package_is_rejected():
    problems = lint({"p.rego": "import rego.v1\n\nallow if true\n"}, policy_file="p.rego")
    assert {p.code for p in problems} == {"lint_no_deny_rule", "lint_package"}


def test_the_built_in_policies_are_clean():
    from tests.conftest import ROOT

    for directory in sorted((ROOT / "policies").iterdir()):
        if directory.is_dir():
            files = {f.name: f.read_text() for f in directory.glob("*.rego")}
            assert lint(files, policy_file="policy.rego") == [], directory.name
