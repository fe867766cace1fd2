"""The Kargo integration recipes parse, and their expressions read fields the decision answer has."""

from __future__ import annotations

import re

import yaml

from policy_server.api.decisions.schemas import DecisionView
from policy_server.api.policies.schemas import ActionView, PromotionRef, ReasonView
from tests.conftest import ROOT

RECIPES = ROOT / "examples" / "kargo"


def _fields(struct) -> set[str]:
    return set(struct.__struct_fields__)


def test_every_recipe_yaml_parses_into_kubernetes_objects():
    for path in RECIPES.glob("*.yaml"):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert documents, path.name
        for document in documents:
            assert {"apiVersion", "kind", "metadata"} <= set(document), path.name


def test_the_gate_is_the_first_step_and_posts_the_promotion():
    (stage,) = yaml.safe_load_all((RECIPES / "stage-prod-with-policy-gate.yaml").read_text())
    assert stage["kind"] == "Stage" and stage["apiVersion"] == "kargo.akuity.io/v1alpha1"
    first = stage["spec"]["promotionTemplate"]["spec"]["steps"][0]
    assert first["uses"] == "http"
    config = first["config"]
    assert config["method"] == "POST" and config["url"].endswith("/v1/decisions")
    assert "ctx.project" in config["body"] and "ctx.promotion" in config["body"]
    # `${% %}`: Kargo ends `${{` at the first `}}`, which the object literal contains (the integration test
    # renders it with Kargo's own engine).
    assert config["body"].startswith("${% quote(") and config["body"].endswith(") %}")
    # Kargo enforces a 10 s floor on pollInterval; the timeout bounds the wait.
    assert int(config["pollInterval"].rstrip("s")) >= 10
    assert first["retry"]["timeout"]
    for key in ("successExpression", "failureExpression", "errorExpression"):
        assert "${{" not in config[key], "Kargo evaluates these as expr-lang; they must not be templated"


def test_expressions_only_read_fields_the_decision_has():
    (stage,) = yaml.safe_load_all((RECIPES / "stage-prod-with-policy-gate.yaml").read_text())
    config = stage["spec"]["promotionTemplate"]["spec"]["steps"][0]["config"]
    expressions = [config["successExpression"], config["failureExpression"], config["errorExpression"]]
    expressions += [o["fromExpression"] for o in config.get("outputs", [])]
    top = set(re.findall(r"response\.body\.(\w+)", " ".join(expressions)))
    assert top and top <= _fields(DecisionView), top - _fields(DecisionView)
    # Inside any(...) predicates: `.promotion.name` of an action, `.code` of a reason.
    failure = config["failureExpression"]
    assert "actions" in top and "reasons" in top
    assert "promotion" in _fields(ActionView) and "name" in _fields(PromotionRef)
    assert "code" in _fields(ReasonView)
    assert ".promotion.name == response.body.promotion.name" in failure


def test_fail_fast_codes_are_codes_the_policies_and_service_emit():
    (stage,) = yaml.safe_load_all((RECIPES / "stage-prod-with-policy-gate.yaml").read_text())
    failure = stage["spec"]["promotionTemplate"]["spec"]["steps"][0]["config"]["failureExpression"]
    listed = set(re.findall(r'"(\w+)"', failure))
    emitted = set()
    for rego in (ROOT / "policies").glob("*/policy.rego"):
        emitted |= set(re.findall(r'"code": "(\w+)"', rego.read_text()))
    emitted |= {"promotion_unknown", "stage_missing"}  # also the service's own fail-closed reasons
    assert listed and listed <= emitted, listed - emitted


def test_rbac_grants_patch_on_promotions_and_promote_on_stages():
    documents = [d for d in yaml.safe_load_all((RECIPES / "rbac.yaml").read_text()) if d]
    role = next(d for d in documents if d["kind"] == "ClusterRole")
    grants = {
        (rule["apiGroups"][0], resource, verb)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert ("kargo.akuity.io", "promotions", "patch") in grants
    assert ("kargo.akuity.io", "stages", "promote") in grants
    binding = next(d for d in documents if d["kind"] == "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
