"""The gate recipe (examples/kargo/stage-prod-with-policy-gate.yaml) as Kargo v1.11 runs it, on real answers.

Kargo's own template engine renders the step config (and must accept it: its JSON Schema for the http step);
the request goes to the server; Kargo's response rules judge each answer: a verification still running is
polled again, an allowed Promotion succeeds, a Promotion to be aborted fails with the reasons in its message,
and a refused request (bad token, malformed) ends the step instead of polling for 30 minutes.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import ROOT
from tests.integration.conftest import AR_E, PROD_P6, PROD_P7
from tests.integration.test_no_wedge import Cluster, record, run_ended, stage_edit
from tests.support.kargo_step import KargoError, KargoHttpStep, kargo_http_step

RECIPE = ROOT / "examples" / "kargo" / "stage-prod-with-policy-gate.yaml"


@pytest.fixture(scope="module")
def kargo() -> KargoHttpStep:
    return kargo_http_step()


def gate_step() -> dict[str, Any]:
    stage = yaml.safe_load(RECIPE.read_text())
    (step,) = [s for s in stage["spec"]["promotionTemplate"]["spec"]["steps"] if s.get("as") == "policy-gate"]
    return step


def ctx(promotion: str) -> dict[str, Any]:
    return {"project": "kargo-demo", "stage": "prod", "promotion": promotion, "meta": {"promotion": {}}}


async def ask(client, kargo: KargoHttpStep, promotion: str, token: str) -> tuple[dict, dict]:
    """One poll of the step: render as Kargo, send to the server, judge the answer as Kargo."""
    rendered = kargo.render(gate_step()["config"], ctx(promotion), {"policy-server": {"token": token}})
    assert rendered["schemaErrors"] == []
    config = rendered["config"]
    headers = {h["name"]: h["value"] for h in config["headers"]}
    response = await client.request(
        config["method"], urlsplit(config["url"]).path, content=config["body"].encode(), headers=headers
    )
    verdict = kargo.judge(config, response.status_code, response.headers.get("content-type", ""), response.text)
    return verdict, response.json() if response.text else {}


def test_the_step_renders_with_kargos_rules_and_its_schema_accepts_it(kargo):
    step = gate_step()
    assert step["uses"] == "http" and step["retry"]["errorThreshold"] >= 2
    rendered = kargo.render(step["config"], ctx(PROD_P6), {"policy-server": {"token": "pst_abc"}})
    assert rendered["schemaErrors"] == []
    config = rendered["config"]
    assert json.loads(config["body"]) == {"promotion": {"namespace": "kargo-demo", "name": PROD_P6}}
    assert {"name": "Authorization", "value": "Bearer pst_abc"} in config["headers"]
    assert config["errorExpression"] and config["failureExpression"] and config["successExpression"]


def test_the_old_recipe_is_cut_at_the_first_closing_delimiter(kargo):
    # What the recipe used to say: Kargo ends `${{` at the first `}}`, inside the object literal.
    config = copy.deepcopy(gate_step()["config"])
    config["body"] = '${{ quote({"promotion": {"namespace": ctx.project, "name": ctx.promotion}}) }}'
    with pytest.raises(KargoError, match="unexpected token EOF"):
        kargo.render(config, ctx(PROD_P6), {"policy-server": {"token": "t"}})


async def test_the_gate_polls_while_verifying_succeeds_when_allowed_and_fails_with_the_reasons(
    client, fixtures_dir, kargo
):
    created = await client.post("/v1/tokens", json={"name": "kargo-gate", "role": "controller"})
    token = created.json()["token"]
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    # Kargo started P6 (it is Running and current) while AR-e verifies P5.
    await cluster.change("Promotion", PROD_P6, lambda p: p["status"].update(phase="Running"))
    await cluster.change("Stage", "prod", stage_edit(currentPromotion={"name": PROD_P6}))

    verdict, answer = await ask(client, kargo, PROD_P6, token)
    assert answer["allow"] is False and {r["code"] for r in answer["reasons"]} == {"verification_in_progress"}
    assert verdict["status"] == "Running" and verdict["retryAfter"] == "15s"

    # AR-e succeeds: the step succeeds, with the decision id as output.
    await cluster.change("AnalysisRun", AR_E, run_ended("Successful", "2026-08-12T10:33:52Z"))
    verdict, answer = await ask(client, kargo, PROD_P6, token)
    assert answer["allow"] is True
    assert verdict["status"] == "Succeeded" and verdict["outputs"]["decisionId"] == answer["id"]


async def test_a_promotion_to_be_aborted_fails_at_once_with_the_reasons_in_the_message(client, fixtures_dir, kargo):
    created = await client.post("/v1/tokens", json={"name": "kargo-gate", "role": "controller"})
    token = created.json()["token"]
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    await cluster.change("AnalysisRun", AR_E, run_ended("Failed", "2026-08-12T10:33:52Z"))
    entry = cluster.objects[("Stage", "prod")]["status"]["freightHistory"][0]["verificationHistory"][0]
    await cluster.change("Stage", "prod", lambda s: record(s, **dict(entry, phase="Failed")))
    # Kargo lets P6 start after a failed verification; its gate asks.
    await cluster.change("Promotion", PROD_P6, lambda p: p["status"].update(phase="Running"))
    await cluster.change("Stage", "prod", stage_edit(currentPromotion={"name": PROD_P6}))

    verdict, answer = await ask(client, kargo, PROD_P6, token)
    assert {a["promotion"]["name"] for a in answer["actions"]} == {PROD_P6, PROD_P7}
    assert verdict["status"] == "Failed" and verdict["terminal"] is True
    assert verdict["message"].startswith("HTTP (200) response met failure criteria: ")
    assert f"policy-server decision {answer['id']}" in verdict["message"]
    assert "cancel-queue-on-failure" in verdict["message"] and "verification_failed" in verdict["message"]


async def test_a_refused_request_ends_the_step_with_the_servers_reason(client, fixtures_dir, kargo):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    verdict, answer = await ask(client, kargo, PROD_P6, "pst_not-a-token")
    assert verdict["status"] == "Failed" and verdict["terminal"] is True
    assert "policy-server answered 401" in verdict["message"]

    # A reader token may not ask for decisions: 403, ended with the server's detail.
    created = await client.post("/v1/tokens", json={"name": "reader", "role": "reader"})
    verdict, answer = await ask(client, kargo, PROD_P6, created.json()["token"])
    assert verdict["status"] == "Failed" and "policy-server answered 403" in verdict["message"]
    assert answer["detail"] in verdict["message"]


def test_unavailable_answers_are_polled_not_failed(kargo):
    rendered = kargo.render(gate_step()["config"], ctx(PROD_P6), {"policy-server": {"token": "t"}})
    config = rendered["config"]
    problem = json.dumps({"title": "Service Unavailable", "status": 503, "detail": "the Rego engine is restarting"})
    assert kargo.judge(config, 503, "application/problem+json", problem)["status"] == "Running"
    # A proxy's HTML error page in front of the server: ignored, polled again.
    assert kargo.judge(config, 502, "text/html", "<html>Bad Gateway</html>")["status"] == "Running"
