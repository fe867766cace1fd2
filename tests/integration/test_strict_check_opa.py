"""The strict check against the reference: real OPA (`opa check --strict`) on the same corpus and builtins."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from policy_server.engine.rego._types import trim_capabilities
from tests.conftest import ROOT, opa_binary
from tests.unit.engine.test_rego_check import corpus, expectation


def opa_check(path: Path) -> list[dict]:
    result = subprocess.run(
        [opa_binary(), "check", "--strict", "--format", "json", str(path)], capture_output=True, text=True, timeout=60
    )
    if result.returncode == 0:
        return []
    return json.loads(result.stderr or result.stdout).get("errors", [])


@pytest.mark.parametrize("path", corpus("invalid"), ids=lambda p: p.stem)
def test_opa_agrees_with_the_corpus(path):
    """Where the corpus says OPA rejects a policy, it does (so our check is no stricter than claimed); where it
    says OPA accepts it, the rejection is policy-server's own rule."""
    _, opa = expectation(path)
    errors = opa_check(path)
    assert bool(errors) == (opa == "rejects"), errors


@pytest.mark.parametrize("path", corpus("valid"), ids=lambda p: p.stem)
def test_opa_accepts_every_valid_policy(path):
    assert opa_check(path) == []


def test_opa_accepts_the_built_in_policies_in_strict_mode():
    folders = [p for p in sorted((ROOT / "policies").iterdir()) if (p / "policy.rego").is_file()]
    for folder in folders:
        files = [str(f) for f in sorted(folder.glob("*.rego"))]
        result = subprocess.run([opa_binary(), "check", "--strict", *files], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_the_vendored_builtin_declarations_are_the_pinned_opas():
    raw = subprocess.run([opa_binary(), "capabilities", "--current"], capture_output=True, text=True, check=True)
    vendored = json.loads((ROOT / "policy_server" / "engine" / "rego" / "capabilities.json").read_text())
    assert trim_capabilities(json.loads(raw.stdout)) == vendored, (
        "run `python -m policy_server.engine.rego $(which opa)` with the pinned OPA and commit the result"
    )
