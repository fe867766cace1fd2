"""Every built-in policy's examples: outcome as named, input valid against the schema, and up to date."""

from __future__ import annotations

import jsonschema
import pytest

from policy_server.engine import Workbench, WorkerPool
from policy_server.service.examples import load_examples, run_examples
from policy_server.service.policies import builtin_schema, read_policy_dir
from tests.conftest import ROOT, kargo_fixtures_dir

FOLDERS = sorted(p for p in (ROOT / "policies").iterdir() if (p / "policy.rego").is_file())


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
async def test_examples_give_the_outcome_in_their_names(folder):
    examples = load_examples(folder)
    assert {name.split("_")[0] for name, _ in examples} == {"allowed", "denied"}, "each policy shows both outcomes"
    workbench = Workbench(WorkerPool(1, name="authoring"))
    try:
        results = await run_examples(workbench, folder.name, read_policy_dir(folder), examples)
    finally:
        await workbench.close()
    assert [(r.name, r.message) for r in results if not r.ok] == []


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_example_inputs_follow_the_documented_schema(folder):
    validator = jsonschema.Draft202012Validator(builtin_schema())
    for name, example in load_examples(folder):
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(example["input"])]
        assert errors == [], name


async def test_examples_are_what_the_fixtures_produce():
    from tests.support.policy_examples import build, render

    files = await build(kargo_fixtures_dir())
    stale = [
        str(p.relative_to(ROOT)) for p, content in files.items() if not p.is_file() or p.read_text() != render(content)
    ]
    assert stale == [], "run `python -m tests.support.policy_examples` and commit the result"
