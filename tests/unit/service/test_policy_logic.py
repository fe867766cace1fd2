"""Policy-service logic that needs no database: merge patches, parameter schemas, scopes, write warnings."""

from __future__ import annotations

from policy_server.service.policies import merge_patch, schema_problems, write_warnings
from policy_server.service.verdict import in_scope
from policy_server.store import RevisionDraft


def test_merge_patch_follows_rfc_7396():
    # The RFC's own example (section 3).
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    patch = {"a": "z", "c": {"f": None}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}  # arrays replace
    assert merge_patch({"a": 1}, "x") == "x"
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}  # the target is not changed in place


def test_parameters_are_checked_against_their_schema_with_the_place_named():
    schema = {
        "type": "object",
        "properties": {"windows": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False,
    }
    assert schema_problems({"windows": ["sat"]}, schema) == []
    problems = schema_problems({"windows": [1], "extra": True}, schema)
    assert len(problems) == 2
    assert {p.code for p in problems} == {"invalid_parameters"}
    assert any("windows" in p.message for p in problems) and any("extra" in p.message for p in problems)
    assert schema_problems({"anything": 1}, None) == []


def test_scopes_match_namespaces_and_stages_with_wildcards():
    everywhere = {"namespaces": ["*"], "stages": ["*"]}
    prod_only = {"namespaces": ["kargo-demo"], "stages": ["prod"]}
    assert in_scope(everywhere, "kargo-demo", "prod")
    assert in_scope(prod_only, "kargo-demo", "prod")
    assert not in_scope(prod_only, "kargo-demo", "uat")
    assert not in_scope(prod_only, "payments", "prod")


def test_a_write_that_drops_tests_or_metadata_is_warned_about():
    before = RevisionDraft(source="package x", tests={"x_test.rego": "package x"}, title="X", description="about x")
    after = RevisionDraft(source="package x", tests={}, title="", description="")
    warnings = write_warnings(before, after)
    assert any("test" in w for w in warnings) and any("title" in w for w in warnings)
    assert write_warnings(before, before) == []
