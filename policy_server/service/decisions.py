"""Answering "may this Promotion start?": input from recorded state, the policies' verdict, claims, the log."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec

from policy_server import metrics
from policy_server.errors import NotFound
from policy_server.kargo import abort_patch, format_time, stage_of_name, time_ns
from policy_server.service.decision_log import DecisionLogWriter
from policy_server.service.inputs import document_from_facts
from policy_server.service.policies import PolicyService
from policy_server.service.regression import RegressionTest, deciding_policy, regression_test
from policy_server.service.verdict import AbortAction, Reason, Verdict
from policy_server.store import (
    DecisionEntry,
    DecisionFacts,
    DecisionStore,
    LoggedDecision,
    PrecomputedVerdict,
    Probe,
    StateStore,
    VerdictStore,
    decode_input,
    encode_input,
    new_decision_id,
)

_log = logging.getLogger("policy_server.decisions")
SERVICE_POLICY = "policy-server"
_encoder = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class Question:
    """What a caller asks: about a recorded Promotion, or a prospective one on a Stage."""

    namespace: str
    promotion: str | None = None
    stage: str | None = None
    freight: str | None = None
    claim: bool = False
    caller: str = ""
    point: Literal["start", "admission"] = "start"
    """Where the question is asked: before the Promotion starts, or when it is created (admission webhook)."""
    log: bool = True
    """Log the decision (False: an admission review with ``dryRun``, which must change nothing)."""

    @property
    def prospective(self) -> bool:
        """A Promotion not created yet."""
        return self.promotion is None


@dataclass(slots=True)
class Decision:
    """The answer, as logged."""

    id: str
    question: Question
    stage: str | None
    verdict: Verdict
    evaluated_at: datetime
    input_hash: str
    duration_ms: float
    claimed: bool
    cached: bool
    repeat_count: int
    document: dict[str, Any] = field(repr=False)

    @property
    def freight(self) -> str | None:
        """The Freight the decision is about: asked for, or the recorded Promotion's (logged the same)."""
        return self.question.freight or (self.document.get("promotion") or {}).get("freight")


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    """Tunables of the decision service."""

    claim_ttl_s: float = 120.0
    """How long a start claim holds unless the Promotion is observed Running or terminal first."""
    cache_ttl_s: float = 1.0
    """How long a verdict is reused for the same input when the policy set reads the time (``now``); a set that
    does not holds its verdicts until the state or the policies change. 0 disables every reuse (kept inputs,
    verdicts, precomputed verdicts): each decision then reads the state and evaluates."""
    cache_entries: int = 2_000
    """Questions whose inputs are kept for reuse (a few kB each; the verdicts are kept ``cache_ttl_s`` only)."""
    max_input_bytes: int = 1024 * 1024
    """A larger assembled input is not evaluated: the decision is denied with ``decision_input_too_large``."""


class DecisionService:
    """Decides, claims and logs."""

    def __init__(
        self,
        state: StateStore,
        decisions: DecisionStore,
        policies: PolicyService,
        settings: DecisionSettings | None = None,
        clock: Callable[[], datetime] | None = None,
        verdicts: VerdictStore | None = None,
    ) -> None:
        self.state = state
        self.decisions = decisions
        self.policies = policies
        self.settings = settings or DecisionSettings()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.verdicts = verdicts
        """Where verdicts computed ahead of questions are kept (None: not used)."""
        self._cache: OrderedDict[str, _KeptVerdict] = OrderedDict()
        self._cache_version = 0
        self._inputs: OrderedDict[tuple[str, str | None, str | None, str | None, str], _ReusableInput] = OrderedDict()
        self.log = DecisionLogWriter(decisions)
        self._evaluating: dict[str, asyncio.Future[_KeptVerdict]] = {}

    async def regression_test(self, decision: LoggedDecision, policy: str | None) -> RegressionTest:
        """A Rego test reproducing ``decision`` for the policy that decided it (or ``policy``)."""
        policy_id, number, mode = deciding_policy(decision, policy)
        revision = await self.policies.store.revision(policy_id, number)
        if revision is None:
            raise NotFound(f"revision {number} of policy {policy_id} no longer exists")
        return regression_test(decision, revision, mode)

    async def decide(self, question: Question) -> Decision:
        """Answer one question; the decision is logged (committed) before it is returned."""
        started = time.perf_counter()
        now = self.clock()
        prepared = await self._input(question, now, precomputed=True)
        document, input_hash, probe, kept = prepared.document, prepared.input_hash, prepared.probe, prepared.kept
        known, has_stage, stored_input = prepared.known, prepared.has_stage, prepared.stored_input
        active = await self.policies.active(prepared.policies)
        cached = kept is not None
        stage = (
            (document.get("stage") or {}).get("name")
            or (document.get("promotion") or {}).get("stage")
            or question.stage
            or stage_of_name(question.promotion)
        )
        self._verdicts_of(active.version)
        key = f"{active.bundle.key}:{active.version}:{input_hash}"
        if kept is None:
            kept = self._cached(key)
            cached = kept is not None
        metrics.child(metrics.VERDICT_CACHE, "hit" if cached else "miss").inc()
        if kept is None:
            kept = await self._shared_evaluation(key, document, question, active.time_dependent)
        added = self._service_checks(question, known, has_stage, kept.verdict)

        decision_id: str | None = None  # made when it is needed: a repeated answer folds into its logged row
        claimed = False
        if stage is not None and has_stage:
            if probe is not None and probe.versions[0] == stage:
                claim = probe.claim
            else:
                claim = await self.decisions.current_claim(question.namespace, stage)
            holder = document["promotion"]["name"] if document.get("promotion") else None
            if claim is not None and claim.live(now) and claim.promotion != holder:
                added.append(_claimed_reason(claim.promotion, stage))
            elif question.claim and kept.verdict.allow and not added and question.promotion is not None:
                expires = now + timedelta(seconds=self.settings.claim_ttl_s)
                decision_id = new_decision_id(now)
                holding = await self.decisions.claim(
                    question.namespace, stage, question.promotion, decision_id, now, expires
                )
                if holding is None:
                    claimed = True
                else:
                    added.append(_claimed_reason(holding.promotion, stage))
        if added:
            # The kept verdict is shared by every answer to the same input: add to a copy.
            verdict = _copy(kept.verdict)
            verdict.reasons += added
            verdict.allow = False
            result = result_document(verdict, question.namespace)
            fold_key = _hash([question.claim, claimed, active.version, input_hash, result])
            reasons = _reason_rows(verdict)
        else:
            verdict, result, reasons = kept.verdict, kept.result, kept.reasons
            fold_key = kept.fold_key(question.claim, claimed, active.version, input_hash)

        duration_ms = (time.perf_counter() - started) * 1000
        folded = None
        if question.log and probe is not None:
            folded = self.log.fold(probe.last, fold_key, now)
        if folded is not None:
            logged_id, repeats = folded
        else:
            # The id sorts by evaluation time (see ulid_floor).
            logged_id, repeats = decision_id or new_decision_id(now), 1
            if question.log:
                entry = DecisionEntry(
                    id=logged_id,
                    namespace=question.namespace,
                    stage=stage,
                    promotion=question.promotion,
                    prospective=question.prospective,
                    freight=question.freight or (document.get("promotion") or {}).get("freight"),
                    allow=verdict.allow,
                    claimed=claimed,
                    evaluated_at=now,
                    fold_key=fold_key,
                    input_hash=input_hash,
                    duration_ms=round(duration_ms, 3),
                    caller=question.caller,
                    result=result,
                    input=document,
                    reasons=reasons,
                    stored_input=stored_input,
                )
                metrics.DECISION_LOG_BACKLOG.inc()
                try:
                    logged_id, repeats = await self.log.record(entry)
                finally:
                    metrics.DECISION_LOG_BACKLOG.dec()
        metrics.child(metrics.DECISIONS, "allow" if verdict.allow else "deny").inc()
        for kind, policy, code in reasons:
            metrics.child(metrics.DECISION_REASONS, kind, policy, code).inc()
        metrics.DECISION_SECONDS.observe(time.perf_counter() - started)
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "decision %s %s %s/%s: %s",
                logged_id,
                "allow" if verdict.allow else "deny",
                question.namespace,
                question.promotion or f"(prospective on {stage})",
                ",".join(r.code for r in verdict.reasons) or "-",
                extra={"decision_id": logged_id, "allow": verdict.allow, "stage": stage},
            )
        return Decision(
            id=logged_id,
            question=question,
            stage=stage,
            verdict=verdict,
            evaluated_at=now,
            input_hash=input_hash,
            duration_ms=round(duration_ms, 3),
            claimed=claimed,
            cached=cached,
            repeat_count=repeats,
            document=document,
        )

    async def _shared_evaluation(
        self, key: str, document: dict[str, Any], question: Question, timed: bool
    ) -> _KeptVerdict:
        """One evaluation per input at a time: when a kept verdict expires under load, or a question arrives while
        its verdict is being computed ahead, the callers share the evaluation in flight."""
        running = self._evaluating.get(key)
        if running is None:
            running = self._evaluating[key] = asyncio.ensure_future(self._evaluate(key, document, question, timed))
            running.add_done_callback(lambda _: self._evaluating.pop(key, None))
        return await asyncio.shield(running)

    async def _evaluate(self, key: str, document: dict[str, Any], question: Question, timed: bool) -> _KeptVerdict:
        verdict: Verdict | None = None
        size = len(_encoder.encode(document))
        if size > self.settings.max_input_bytes:
            verdict = Verdict(allow=False, reasons=[_too_large(size, self.settings.max_input_bytes)])
        if verdict is None:
            evaluation_started = time.perf_counter()
            verdict, _ = await self.policies.evaluate(document)
            metrics.child(metrics.EVALUATION_SECONDS, self.policies.engine.name).observe(
                time.perf_counter() - evaluation_started
            )
        at = time.monotonic()
        kept = _KeptVerdict(at, verdict, result_document(verdict, question.namespace))
        kept.expires = at + self.settings.cache_ttl_s if timed else None
        if not _failed(verdict):
            self._remember(key, kept)
        return kept

    async def _precomputed(self, question: Question, now: datetime, probe: Probe | None) -> _Prepared | None:
        """The answer computed ahead of the question (when the Promotion's Stage last changed), if it still holds:
        the same state versions, policy set and (for a time-dependent set) not expired. One or two small reads
        (``probe``, when the caller read it for the same Stage, is not read again) instead of the Stage's history
        and an evaluation."""
        if self.verdicts is None or question.promotion is None or question.point != "start":
            return None
        pre = await self.verdicts.get(question.namespace, question.promotion)
        if pre is None:
            return None
        if probe is None or probe.versions[0] != pre.stage:
            probe = await self.state.probe(question.namespace, pre.stage, question.promotion)
        active = await self.policies.active(probe.policies)
        if not pre.holds(probe, active.bundle.key, time_ns(now)):
            metrics.child(metrics.PRECOMPUTED, "stale").inc()
            return None
        metrics.child(metrics.PRECOMPUTED, "used").inc()
        document = decode_input(pre.input_encoding, pre.input_body) or {}
        verdict = msgspec.json.decode(pre.verdict, type=Verdict)
        kept = _KeptVerdict(time.monotonic(), verdict, result_document(verdict, question.namespace))
        kept.expires = (
            None if pre.expires_ns is None else time.monotonic() + max(0, pre.expires_ns - time_ns(now)) / 1e9
        )
        self._verdicts_of(active.version)  # (before keeping it: a change of set would clear it after)
        self._remember(f"{active.bundle.key}:{active.version}:{pre.input_hash}", kept)
        return _Prepared(
            None,
            document,
            pre.input_hash,
            probe,
            True,
            True,
            probe.policies,
            kept,
            (pre.input_encoding, pre.input_body),
        )

    async def precompute_stage(self, namespace: str, stage: str, depth: int | None = None) -> list[PrecomputedVerdict]:
        """The verdicts on the first ``depth`` (all: None) queued Promotions of a Stage now, from one read of its
        state, to answer the next question about each without evaluating (an evaluation that failed is not
        kept)."""
        now = self.clock()
        # Not kept for reuse: a burst of changes would push out the inputs of the questions being asked.
        facts = await self.state.decision_facts(namespace, stage=stage)
        if facts.stage is None:
            return []
        out = []
        for queued in facts.stage.queue[:depth]:
            question = Question(namespace, promotion=queued.name, log=False)
            # The facts a question about this Promotion reads: the same snapshot, with it as P.
            verdict = await self._precompute(question, replace(facts, promotion=queued), now)
            if verdict is not None:
                out.append(verdict)
        return out

    async def precompute(self, namespace: str, promotion: str) -> PrecomputedVerdict | None:
        """The verdict on a queued Promotion now, to answer the next question about it without evaluating (None
        when the Promotion or its Stage is not recorded, or the evaluation failed: such answers are not kept)."""
        now = self.clock()
        facts = await self.state.decision_facts(namespace, promotion=promotion)
        return await self._precompute(Question(namespace, promotion=promotion, log=False), facts, now)

    async def _precompute(self, question: Question, facts: DecisionFacts, now: datetime) -> PrecomputedVerdict | None:
        if facts.versions is None or facts.promotion is None or facts.stage is None or question.promotion is None:
            return None
        namespace, promotion = question.namespace, question.promotion
        document = self.document_for(facts, question, now)
        input_hash = _input_hash(document)
        active = await self.policies.active(facts.policies)
        key = f"{active.bundle.key}:{active.version}:{input_hash}"
        kept = self._cached(key) or await self._shared_evaluation(key, document, question, active.time_dependent)
        if _failed(kept.verdict):
            return None
        now_ns = time_ns(now)
        encoding, body = encode_input(document)
        return PrecomputedVerdict(
            namespace,
            promotion,
            facts.versions[0],
            facts.versions,
            active.version,
            active.bundle.key,
            input_hash,
            _encoder.encode(kept.verdict),
            encoding,
            body,
            now_ns,
            now_ns + int(self.settings.cache_ttl_s * 1e9) if active.time_dependent else None,
        )

    async def _input(
        self, question: Question, now: datetime, *, keep: bool = True, precomputed: bool = False
    ) -> _Prepared:
        """The input document, its hash (without the time), and the probe when the facts were kept. Facts read
        for the same question are reused while the state versions they were read at hold: one small read (the
        probe, which also brings the policy-set version and the claim) instead of the Stage's history. Otherwise
        (``precomputed``) a verdict computed when the Stage last changed answers, if it still holds; else the
        facts are read."""
        key = (question.namespace, question.promotion, question.stage, question.freight, question.point)
        reuse = self.settings.cache_ttl_s > 0 and self.settings.cache_entries > 0
        hit = self._inputs.get(key) if reuse else None
        probe = None
        if hit is not None:
            probe = await self.state.probe(question.namespace, hit.versions[0], question.promotion)
            if probe.versions == hit.versions:
                self._inputs.move_to_end(key)
                metrics.child(metrics.INPUT_CACHE, "hit").inc()
                if question.prospective and hit.facts is not None:
                    # The prospective Promotion is created "now": rebuild the document around it.
                    document = self.document_for(hit.facts, question, now)
                    return _Prepared.of(hit.facts, document, _input_hash(document), probe)
                document = {**hit.document, "now": format_time(now), "now_ns": time_ns(now)}
                return _Prepared(hit.facts, document, hit.input_hash, probe, hit.known, hit.has_stage, probe.policies)
        if reuse:
            metrics.child(metrics.INPUT_CACHE, "miss").inc()
            if precomputed:
                ready = await self._precomputed(question, now, probe)
                if ready is not None:
                    if keep and ready.probe is not None:
                        # Asked again, it is answered like any kept input: the probe, and the verdict kept above.
                        versions = ready.probe.versions
                        self._keep(key, _ReusableInput(None, versions, True, True, ready.document, ready.input_hash))
                    return ready
        facts = await self.state.decision_facts(
            question.namespace, promotion=question.promotion, stage=question.stage, freight=question.freight
        )
        document = self.document_for(facts, question, now)
        input_hash = _input_hash(document)
        if reuse and keep and facts.versions is not None:
            known, has_stage = facts.promotion is not None, facts.stage is not None
            self._keep(key, _ReusableInput(facts, facts.versions, known, has_stage, document, input_hash))
        # A probe that found other versions is stale for this answer (the claim is read again).
        return _Prepared.of(
            facts, document, input_hash, probe if probe is not None and probe.versions == facts.versions else None
        )

    def _keep(self, key: tuple[str, str | None, str | None, str | None, str], reusable: _ReusableInput) -> None:
        self._inputs[key] = reusable
        self._inputs.move_to_end(key)
        while len(self._inputs) > self.settings.cache_entries:
            self._inputs.popitem(last=False)

    async def input_for(self, question: Question, now: datetime) -> dict[str, Any]:
        """The input document a decision about ``question`` evaluates at ``now`` (from kept facts while the
        state versions they were read at hold, else read afresh)."""
        return (await self._input(question, now)).document

    def kept(self) -> tuple[list[tuple[str, str | None, str | None, str | None, str]], int]:
        """What the service keeps for reuse: the questions whose inputs are kept (oldest first), and how many
        verdicts (both bounded by ``cache_entries``; verdicts also by ``cache_ttl_s``)."""
        return list(self._inputs), len(self._cache)

    @staticmethod
    def document_for(facts: DecisionFacts, question: Question, now: datetime) -> dict[str, Any]:
        """The input document of ``question`` from ``facts`` read for it."""
        return document_from_facts(
            facts,
            namespace=question.namespace,
            now=now,
            prospective=question.prospective,
            prospective_freight=question.freight,
            point=question.point,
        )

    def _service_checks(self, question: Question, known: bool, has_stage: bool, verdict: Verdict) -> list[Reason]:
        """Denials that do not depend on any policy being enabled (the answer fails closed): the ones to add."""
        added: list[Reason] = []
        if question.promotion is not None and not known and not _has(verdict, "promotion_unknown"):
            added.append(
                Reason(
                    SERVICE_POLICY,
                    "promotion_unknown",
                    f"Promotion {question.namespace}/{question.promotion} is not recorded",
                )
            )
        if question.prospective and not has_stage and not _has(verdict, "stage_missing"):
            added.append(
                Reason(SERVICE_POLICY, "stage_missing", f"Stage {question.namespace}/{question.stage} is not recorded")
            )
        return added

    def _cached(self, key: str) -> _KeptVerdict | None:
        if self.settings.cache_ttl_s <= 0:
            return None
        hit = self._cache.get(key)
        if hit is None or (hit.expires is not None and time.monotonic() > hit.expires):
            return None
        return hit

    def _verdicts_of(self, version: int) -> None:
        """The kept verdicts are of policy-set ``version``: those of an earlier set are never asked for again."""
        if version != self._cache_version:
            self._cache.clear()
            self._cache_version = version

    def _remember(self, key: str, kept: _KeptVerdict) -> None:
        """Keep a verdict for its input (the key names the policy set and the input): until it expires when the
        set reads the time, else as long as it is among the ``cache_entries`` newest."""
        if self.settings.cache_ttl_s <= 0:
            return
        now = kept.at
        self._cache[key] = kept
        self._cache.move_to_end(key)
        while self._cache:
            oldest = next(iter(self._cache))
            expires = self._cache[oldest].expires
            if (expires is None or now <= expires) and len(self._cache) <= self.settings.cache_entries:
                break
            del self._cache[oldest]


def result_document(verdict: Verdict, namespace: str) -> dict[str, Any]:
    """The logged result: what the answer says, without ids or times."""

    def reasons(items: list[Reason]) -> list[dict[str, str]]:
        return [
            {"policy": r.policy, "code": r.code, "message": r.message}
            | ({"retry_after": r.retry_after} if r.retry_after else {})
            for r in items
        ]

    def actions(items: list[AbortAction]) -> list[dict[str, Any]]:
        return [
            {
                "type": "abort",
                "promotion": {"namespace": namespace, "name": a.promotion},
                "policy": a.policy,
                "reason": a.reason,
                "patch": abort_patch(),
            }
            for a in items
        ]

    return {
        "allow": verdict.allow,
        "reasons": reasons(verdict.reasons),
        "warnings": reasons(verdict.warnings),
        "dry_run": reasons(verdict.dry_run),
        "actions": actions(verdict.actions),
        "dry_run_actions": actions(verdict.dry_run_actions),
        "policies": [{"id": p.id, "revision": p.revision, "mode": p.mode} for p in verdict.policies],
    }


def _too_large(size: int, limit: int) -> Reason:
    return Reason(
        SERVICE_POLICY,
        "decision_input_too_large",
        f"the Stage's state makes a {size}-byte input, more than max_input_bytes={limit}: not evaluated",
    )


def _claimed_reason(holder: str, stage: str) -> Reason:
    return Reason(
        SERVICE_POLICY, "stage_claimed", f"Promotion {holder} has claimed Stage {stage} and is about to start"
    )


def _copy(verdict: Verdict) -> Verdict:
    return replace(
        verdict,
        reasons=list(verdict.reasons),
        warnings=list(verdict.warnings),
        dry_run=list(verdict.dry_run),
        actions=list(verdict.actions),
        dry_run_actions=list(verdict.dry_run_actions),
        policies=list(verdict.policies),
    )


class _KeptVerdict:
    """A verdict with what every answer to its input logs (shared by those answers: never mutated)."""

    __slots__ = ("at", "expires", "verdict", "result", "reasons", "_folds")

    def __init__(self, at: float, verdict: Verdict, result: dict[str, Any]) -> None:
        self.at = at
        self.expires: float | None = None
        """When it stops holding by time alone (monotonic; None: only a change of input or policies ends it)."""
        self.verdict = verdict
        self.result = result
        self.reasons = _reason_rows(verdict)
        self._folds: dict[tuple[bool, bool, int, str], str] = {}

    def fold_key(self, claim: bool, claimed: bool, version: int, input_hash: str) -> str:
        """What an identical answer to the same question folds by (see ``DecisionEntry.fold_key``)."""
        key = (claim, claimed, version, input_hash)
        fold = self._folds.get(key)
        if fold is None:
            fold = self._folds[key] = _hash([claim, claimed, version, input_hash, self.result])
        return fold


def _reason_rows(verdict: Verdict) -> list[tuple[str, str, str]]:
    return (
        [("deny", r.policy, r.code) for r in verdict.reasons]
        + [("warn", r.policy, r.code) for r in verdict.warnings]
        + [("dryrun", r.policy, r.code) for r in verdict.dry_run]
    )


def _failed(verdict: Verdict) -> bool:
    """An engine failure or timeout: such an answer is given (fail closed) but never kept."""
    return any(r.code.startswith(("evaluation_", "engine_")) for r in verdict.reasons)


def _has(verdict: Verdict, code: str) -> bool:
    return any(r.code == code for r in verdict.reasons)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a question is answered from: its input, and a verdict when one computed ahead still holds."""

    facts: DecisionFacts | None
    """None when answered from a precomputed verdict (the facts were not read)."""
    document: dict[str, Any]
    input_hash: str
    probe: Probe | None
    known: bool
    has_stage: bool
    policies: int | None
    """The policy-set version read with the state (None: not read)."""
    kept: _KeptVerdict | None = None
    stored_input: tuple[str, bytes] | None = None

    @staticmethod
    def of(facts: DecisionFacts, document: dict[str, Any], input_hash: str, probe: Probe | None) -> _Prepared:
        return _Prepared(
            facts,
            document,
            input_hash,
            probe,
            facts.promotion is not None,
            facts.stage is not None,
            probe.policies if probe is not None else facts.policies,
        )


@dataclass(frozen=True, slots=True)
class _ReusableInput:
    """Facts read for one question, with the document built from them (shared: never mutated), reused while the
    state versions they were read at hold."""

    facts: DecisionFacts | None
    """None when kept from a precomputed verdict (a question about a recorded Promotion: never rebuilt)."""
    versions: tuple[str, int, int]
    known: bool
    has_stage: bool
    document: dict[str, Any]
    input_hash: str


def _input_hash(document: dict[str, Any]) -> str:
    return _hash({k: v for k, v in document.items() if k not in ("now", "now_ns")})


def _hash(value: Any) -> str:
    return hashlib.sha256(_encoder.encode(value)).hexdigest()
