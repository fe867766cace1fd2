"""From per-policy outcomes to one verdict: enforcement modes, fail-closed failures, abort actions."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from policy_server import metrics
from policy_server.engine import PolicyOutcome

MODES = ("enforce", "warn", "dryrun")


@dataclass(frozen=True, slots=True)
class Reason:
    """A denial (or a warning, or what a dry-run policy would have denied)."""

    policy: str
    code: str
    message: str
    retry_after: str | None = None
    """When asking again can change this answer (RFC 3339), for time-bound denials such as a freeze window."""


@dataclass(frozen=True, slots=True)
class AbortAction:
    """A Promotion a policy wants aborted."""

    policy: str
    promotion: str
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """A policy revision that took part in a verdict."""

    id: str
    revision: int
    mode: str


@dataclass(slots=True)
class Verdict:
    """The answer of the policy set to one input document."""

    allow: bool
    reasons: list[Reason] = field(default_factory=list)
    warnings: list[Reason] = field(default_factory=list)
    dry_run: list[Reason] = field(default_factory=list)
    actions: list[AbortAction] = field(default_factory=list)
    dry_run_actions: list[AbortAction] = field(default_factory=list)
    policies: list[PolicyRef] = field(default_factory=list)


DEFAULT_POINTS = ("start",)
"""Where a policy applies when its scope does not say: before a Promotion starts (what every policy written
before admission reviews existed was written for)."""


def in_scope(scope: dict[str, list[str]], namespace: str | None, stage: str | None, point: str = "start") -> bool:
    """Whether a policy's scope covers the question: glob patterns for namespaces and Stage names, and the
    points it is asked at (``start``: may the Promotion start; ``admission``: may it be created)."""
    namespaces = scope.get("namespaces") or ["*"]
    stages = scope.get("stages") or ["*"]
    points = scope.get("points") or DEFAULT_POINTS
    return (
        point in points
        and any(fnmatch.fnmatchcase(namespace or "", p) for p in namespaces)
        and any(fnmatch.fnmatchcase(stage or "", p) for p in stages)
    )


def aggregate(refs: list[PolicyRef], outcomes: list[PolicyOutcome], document: dict[str, Any]) -> Verdict:
    """Combine outcomes: any enforced denial or failure denies; warn and dry-run never change the answer."""
    verdict = Verdict(allow=True, policies=list(refs))
    queued = set(document.get("queue") or [])
    stage = (document.get("stage") or {}).get("name") or "the Stage"
    for ref, outcome in zip(refs, outcomes, strict=True):
        denials = [Reason(ref.id, d["code"], d.get("message", ""), d.get("retry_after")) for d in outcome.deny]
        warnings = [Reason(ref.id, w["code"], w.get("message", "")) for w in outcome.warn]
        if outcome.failure is not None:
            metrics.EVALUATION_FAILURES.labels(outcome.failure.code).inc()
            denials.append(Reason(ref.id, outcome.failure.code, outcome.failure.message))
        actions: list[AbortAction] = []
        for item in outcome.abort:
            if item["promotion"] in queued:
                actions.append(AbortAction(ref.id, item["promotion"], item.get("reason", "")))
            else:
                # Abort actions only ever name queued Promotions of the Stage in question.
                warnings.append(
                    Reason(
                        ref.id,
                        "abort_ignored",
                        f"asked to abort {item['promotion']}, which is not queued on {stage}: ignored",
                    )
                )
        if ref.mode == "enforce":
            verdict.reasons += denials
            verdict.warnings += warnings
            verdict.actions += actions
        elif ref.mode == "warn":
            verdict.warnings += denials + warnings
            verdict.dry_run_actions += actions
        else:
            verdict.dry_run += denials + warnings
            verdict.dry_run_actions += actions
    verdict.allow = not verdict.reasons
    verdict.actions = _unique(verdict.actions)
    verdict.dry_run_actions = _unique(verdict.dry_run_actions)
    return verdict


def _unique(actions: list[AbortAction]) -> list[AbortAction]:
    """One action per Promotion (the first policy that asked), in queue-name order."""
    seen: dict[str, AbortAction] = {}
    for action in actions:
        seen.setdefault(action.promotion, action)
    return sorted(seen.values(), key=lambda a: a.promotion)
