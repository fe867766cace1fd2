"""Impact analysis: what a policy draft would have decided on the logged decisions of a window.

Each logged decision keeps its exact input, its answer and each policy's own reasons. Replaying a draft in place
of a policy's revision needs only the draft's own outcome on that input: the other policies' enforced denials
are in the log, so the new answer is "denied by another policy, or by the draft". A folded run of identical
answers is one logged decision: one distinct input, counted with its repeats.

Runs on the authoring capacity (the workbench), in batches, with a size and a time limit; never on the workers
that answer decisions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policy_server.engine import FAILURE_CODES, Bundle, PolicyCode, Workbench
from policy_server.service.verdict import in_scope
from policy_server.store import DecisionFilter, DecisionStore, LoggedDecision, RevisionDraft

KINDS = ("allow_to_deny", "deny_to_allow", "code_changes")
_OLD_KEYS = {"enforce": "reasons", "warn": "warnings", "dryrun": "dry_run"}


@dataclass(frozen=True, slots=True)
class ImpactQuestion:
    """What to replay: the draft in place of ``policy_id``, over the decisions ``where`` selects."""

    policy_id: str
    draft: RevisionDraft
    where: DecisionFilter
    max_decisions: int = 5_000
    timeout_s: float = 60.0
    examples: int = 3
    batch: int = 200


@dataclass
class Tally:
    """Decisions (distinct inputs) and the answers they stand for (with repeats)."""

    decisions: int = 0
    answers: int = 0

    def add(self, repeats: int) -> None:
        self.decisions += 1
        self.answers += repeats


@dataclass
class StageImpact:
    namespace: str
    stage: str | None
    counts: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})


@dataclass
class ImpactReport:
    """The flips, per kind and per Stage, with a few example decision ids each."""

    policy: str
    mode: str
    since: datetime | None
    until: datetime | None
    scanned: Tally = field(default_factory=Tally)
    without_input: int = 0
    draft_failures: int = 0
    """Decisions where the draft failed to evaluate (counted as a denial: decisions fail closed)."""
    counts: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    stages: dict[tuple[str, str | None], StageImpact] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in KINDS})
    complete: bool = True
    stopped: str | None = None
    """Why the replay stopped early: ``max_decisions`` or ``timeout``."""
    elapsed_s: float = 0.0

    @property
    def flips(self) -> int:
        """Decisions whose answer would change (allow→deny and deny→allow)."""
        return self.counts["allow_to_deny"].decisions + self.counts["deny_to_allow"].decisions


@dataclass(frozen=True, slots=True)
class Progress:
    """Streamed while replaying a long window."""

    scanned: int
    flips: int
    elapsed_s: float


def _codes(decision: LoggedDecision, policy_id: str) -> tuple[str | None, list[str]]:
    """The policy's mode in the logged decision (None: it was not asked) and the codes it answered."""
    result = decision.result
    mode = next((p["mode"] for p in result.get("policies", []) if p.get("id") == policy_id), None)
    if mode is None:
        return None, []
    entries = result.get(_OLD_KEYS.get(mode, "reasons"), [])
    return mode, sorted({r["code"] for r in entries if r.get("policy") == policy_id})


def _denied_by_others(decision: LoggedDecision, policy_id: str) -> bool:
    return any(r.get("policy") != policy_id for r in decision.result.get("reasons", []))


def _in_scope(draft: RevisionDraft, document: dict[str, Any]) -> bool:
    namespace = document.get("namespace")
    stage = (document.get("stage") or {}).get("name") or (document.get("promotion") or {}).get("stage")
    return in_scope(draft.scope, namespace, stage, document.get("point") or "start")


class ImpactAnalysis:
    """Replays logged decisions with a draft on the authoring workbench."""

    def __init__(self, decisions: DecisionStore, workbench: Workbench) -> None:
        self.decisions = decisions
        self.workbench = workbench

    async def run(self, question: ImpactQuestion) -> AsyncIterator[Progress | ImpactReport]:
        """Progress after each batch, then the report (also when a limit stopped the replay)."""
        started = time.monotonic()
        draft = question.draft
        report = ImpactReport(question.policy_id, draft.mode, question.where.since, question.where.until)
        code = PolicyCode(question.policy_id, draft.source)
        bundle = Bundle.of([code], {question.policy_id: draft.parameters})
        pending: list[LoggedDecision] = []
        async for decision in self.decisions.export(question.where, batch=question.batch):
            # A limit stops the replay only when there is a decision it would have to leave out.
            if report.scanned.decisions + len(pending) >= question.max_decisions:
                report.complete, report.stopped = False, "max_decisions"
                break
            if time.monotonic() - started > question.timeout_s:
                report.complete, report.stopped = False, "timeout"
                break
            if decision.input is None:
                report.without_input += 1
                continue
            pending.append(decision)
            if len(pending) >= question.batch:
                await self._replay(bundle, question, pending, report)
                pending = []
                yield Progress(report.scanned.decisions, report.flips, round(time.monotonic() - started, 3))
        if pending:
            await self._replay(bundle, question, pending, report)
        report.elapsed_s = round(time.monotonic() - started, 3)
        yield report

    async def _replay(
        self, bundle: Bundle, question: ImpactQuestion, batch: list[LoggedDecision], report: ImpactReport
    ) -> None:
        draft = question.draft
        policy_id = question.policy_id
        asked = [d for d in batch if _in_scope(draft, d.input or {})]
        calls = [(policy_id, {**(d.input or {}), "parameters": draft.parameters}) for d in asked]
        outcomes = await self.workbench.evaluate(bundle, calls) if calls else []
        new_codes: dict[str, list[str]] = {}
        for decision, outcome in zip(asked, outcomes, strict=True):
            if outcome.failure is not None:
                report.draft_failures += 1
                new_codes[decision.id] = [outcome.failure.code]
            else:
                new_codes[decision.id] = sorted({d["code"] for d in outcome.deny})
        for decision in batch:
            self._count(decision, new_codes.get(decision.id, []), report, question)

    def _count(
        self, decision: LoggedDecision, after: list[str], report: ImpactReport, question: ImpactQuestion
    ) -> None:
        policy_id = question.policy_id
        repeats = max(decision.repeat_count, 1)
        report.scanned.add(repeats)
        _, before = _codes(decision, policy_id)
        enforcing = question.draft.mode == "enforce"
        failed = any(c in FAILURE_CODES for c in after)
        new_allow = not _denied_by_others(decision, policy_id) and not (enforcing and (after or failed))
        if decision.allow and not new_allow:
            kind = "allow_to_deny"
        elif not decision.allow and new_allow:
            kind = "deny_to_allow"
        elif before != after:
            kind = "code_changes"
        else:
            return
        report.counts[kind].add(repeats)
        key = (decision.namespace, decision.stage)
        stage = report.stages.setdefault(key, StageImpact(decision.namespace, decision.stage))
        stage.counts[kind].add(repeats)
        examples = report.examples[kind]
        if len(examples) < question.examples:
            examples.append(
                {
                    "id": decision.id,
                    "namespace": decision.namespace,
                    "stage": decision.stage,
                    "promotion": decision.promotion,
                    "repeat_count": repeats,
                    "before": {"allow": decision.allow, "codes": before},
                    "after": {"allow": new_allow, "codes": after},
                }
            )
