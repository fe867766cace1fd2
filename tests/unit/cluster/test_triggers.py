"""Which Stages a recorded change makes the enforcer look at again (no cluster needed)."""

from __future__ import annotations

import json

from policy_server.cluster._enforce import _stages_of
from tests.conftest import ROOT

DEMO = {
    (i["kind"], i["metadata"]["name"]): i
    for i in json.loads((ROOT / "examples" / "kargo-demo" / "list-kargo-demo.json").read_text())["items"]
}


def _one(kind: str, prefix: str = "") -> dict:
    return next(obj for (k, name), obj in DEMO.items() if k == kind and name.startswith(prefix))


def test_a_promotion_or_a_run_marks_its_stage_a_stage_itself_and_a_freight_every_stage_of_the_namespace():
    assert _stages_of(_one("Promotion", "uat.")) == {("kargo-demo", "uat")}
    assert _stages_of(_one("AnalysisRun")) == {("kargo-demo", "prod")}  # by Kargo's stage label
    assert _stages_of(_one("Stage", "test")) == {("kargo-demo", "test")}
    assert _stages_of(_one("Freight")) == {("kargo-demo", "*")}


def test_other_kinds_and_objects_the_store_refuses_mark_nothing():
    assert _stages_of(_one("Warehouse")) == set()
    broken = dict(_one("Promotion", "prod."))
    broken["spec"] = "not an object"
    assert _stages_of(broken) == set()
    assert _stages_of({"kind": "Promotion", "metadata": {}}) == set()
