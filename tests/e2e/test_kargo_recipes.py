"""The Kargo objects in examples/kargo/ are accepted by a real API server with Kargo's CRDs (v1.11 schema)."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT


def test_the_gated_stage_is_a_valid_kargo_stage(kube):
    namespace = kube.project()
    stage = yaml.safe_load((ROOT / "examples" / "kargo" / "stage-prod-with-policy-gate.yaml").read_text())
    stage["metadata"]["namespace"] = namespace
    # Strict field validation: an unknown field (a misspelt errorThreshold, say) is an error, not dropped.
    out = kube.kubectl("create", "--dry-run=server", "--validate=strict", "-f", "-", stdin=yaml.safe_dump(stage))
    assert "stage.kargo.akuity.io/prod created (server dry run)" in out
    stage["spec"]["promotionTemplate"]["spec"]["steps"][0]["retry"]["errorTreshold"] = 10
    with pytest.raises(RuntimeError, match="errorTreshold"):
        kube.kubectl("create", "--dry-run=server", "--validate=strict", "-f", "-", stdin=yaml.safe_dump(stage))
