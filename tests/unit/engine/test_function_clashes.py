"""Function heads of Rego modules, and the cross-policy clashes that crash regopy (policies/README.md rule 9)."""

from __future__ import annotations

from policy_server.engine import function_clashes, function_heads

SOURCE = """package team.a

import rego.v1

# _commented(x, y) := 1
deny contains d if some d in denials(input)

denials(inp) := {x |
	some x in inp.items
	_helper(x, "a(b, c)")
}

_helper(x, y) := true if {
	x != y
}

default _limit(_) := 3

r := _helper(1, {"k": [1, 2]})

_obj({"a": a, "b": b}, c) := a + b + c

_text := `raw
_fake(a, b, c)`

_none() := 1
"""


def test_function_heads_are_the_top_level_definitions_only():
    heads = [(h.name, h.arity, h.line) for h in function_heads(SOURCE)]
    assert heads == [
        ("denials", 1, 8),
        ("_helper", 2, 13),
        ("_limit", 1, 17),
        ("_obj", 2, 21),
        ("_none", 0, 26),
    ]


def test_a_clash_is_the_same_name_with_another_arity_in_another_policy():
    others = {"admission": "package policies.admission\n\n_running(inp) := 1\n_helper(x, y) := 2\n"}
    draft = "package team.b\n\n_running(a, b) := a\n_helper(x, y) := x\n_fine(x) := x\n"
    clashes = function_clashes(draft, others)
    assert [(c.head.name, c.head.arity, c.head.line, c.other_policy, c.other_arity) for c in clashes] == [
        ("_running", 2, 3, "admission", 1)
    ]
    assert function_clashes(draft, {}) == []


def test_the_built_in_policies_do_not_clash_with_each_other():
    from tests.conftest import ROOT

    sources = {p.parent.name: p.read_text() for p in (ROOT / "policies").glob("*/policy.rego")}
    assert len(sources) >= 5
    for policy_id, source in sources.items():
        others = {other: text for other, text in sources.items() if other != policy_id}
        assert function_clashes(source, others) == [], policy_id
