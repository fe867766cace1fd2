"""Policy examples: ``examples/allowed_<case>.json`` and ``denied_<case>.json`` with their expected outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_server.engine import Bundle, PolicyCode, Workbench
from policy_server.store import RevisionDraft


@dataclass(frozen=True, slots=True)
class ExampleResult:
    """Whether an example's policy outcome matched what its file name and ``expect`` say."""

    policy_id: str
    name: str
    ok: bool
    message: str


def load_examples(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(file name, content)`` of every example of a policy folder."""
    folder = directory / "examples"
    if not folder.is_dir():
        return []
    return [(p.name, json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


async def run_examples(
    workbench: Workbench, policy_id: str, draft: RevisionDraft, examples: list[tuple[str, dict[str, Any]]]
) -> list[ExampleResult]:
    """Evaluate each example's input with the policy (and its default parameters unless the example sets them)."""
    code = PolicyCode(policy_id, draft.source)
    bundle = Bundle.of([code])
    results = []
    for name, example in examples:
        document = dict(example["input"])
        document["parameters"] = example.get("parameters", draft.parameters)
        (outcome,) = await workbench.evaluate(bundle, [(policy_id, document)])
        results.append(_judge(policy_id, name, example.get("expect", {}), outcome))
    return results


def _judge(policy_id: str, name: str, expect: dict[str, Any], outcome: Any) -> ExampleResult:
    if outcome.failure is not None:
        return ExampleResult(policy_id, name, False, f"{outcome.failure.code}: {outcome.failure.message}")
    allowed = not outcome.deny
    want_allowed = name.startswith("allowed_")
    if not (name.startswith("allowed_") or name.startswith("denied_")):
        return ExampleResult(
            policy_id, name, False, "example files are named allowed_<case>.json or denied_<case>.json"
        )
    problems = []
    if allowed != want_allowed:
        problems.append(f"expected {'allow' if want_allowed else 'deny'}, got {[d['code'] for d in outcome.deny]}")
    codes = sorted({d["code"] for d in outcome.deny})
    if "codes" in expect and codes != sorted(expect["codes"]):
        problems.append(f"expected codes {sorted(expect['codes'])}, got {codes}")
    aborts = sorted(a["promotion"] for a in outcome.abort)
    if "aborts" in expect and aborts != sorted(expect["aborts"]):
        problems.append(f"expected aborts {sorted(expect['aborts'])}, got {aborts}")
    warnings = sorted({w["code"] for w in outcome.warn})
    if "warnings" in expect and warnings != sorted(expect["warnings"]):
        problems.append(f"expected warnings {sorted(expect['warnings'])}, got {warnings}")
    return ExampleResult(policy_id, name, not problems, "; ".join(problems) or "ok")
