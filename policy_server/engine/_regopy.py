"""The embedded evaluator: regopy in killable worker processes."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from policy_server.engine._codes import (
    ENGINE_CRASHED,
    EVALUATION_ERROR,
    EVALUATION_UNDEFINED,
    INVALID_RESULT,
    POLICY_UNPREPARED,
)
from policy_server.engine._model import Bundle, EngineStatus, Failure, PolicyCall, PolicyOutcome
from policy_server.engine._pool import BundleRejected, WorkerFailure, WorkerPool
from policy_server.engine._protocol import Call, EvaluateEach, EvaluatePreset, Outcome

_log = logging.getLogger(__name__)
# An outcome the preset path gave that is asked again with one input per policy: a crash (see
# ``presets_off``), or an error the policy may not raise on its own input.
_RETRY = {ENGINE_CRASHED, EVALUATION_ERROR, INVALID_RESULT}


class RegopyEvaluator:
    """Evaluates bundles with regopy on a pool of worker processes of its own."""

    name = "regopy"

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.presets_off: set[str] = set()
        """Policy sets that crashed the engine with preset parameters: asked one policy at a time from then on."""

    async def start(self) -> None:
        """Start the worker processes."""
        await self.pool.start()

    async def close(self) -> None:
        """Stop the worker processes."""
        await self.pool.close()

    async def status(self) -> EngineStatus:
        """Embedded: ready whenever the service runs (a dead worker is replaced at its next request)."""
        return EngineStatus(self.name, True, f"regopy (embedded), {self.pool.size} workers, {self.pool.idle} idle")

    async def evaluate(self, bundle: Bundle, calls: Sequence[PolicyCall]) -> list[PolicyOutcome]:
        """Evaluate policies of ``bundle``, each on its own input; failures come back as outcomes, never raised.

        A policy that cannot be prepared (``bundle.unprepared``) fails alone; the others are evaluated.
        """
        unprepared = {pid: PolicyOutcome(pid, failure=Failure(POLICY_UNPREPARED, why))
                      for pid, why in bundle.unprepared.items()}  # fmt: skip
        ready = [i for i, (pid, _) in enumerate(calls) if pid not in unprepared]
        out: list[PolicyOutcome | None] = [unprepared.get(pid) for pid, _ in calls]
        for i, outcome in zip(ready, await self._evaluate(bundle, [calls[i] for i in ready]), strict=True):
            out[i] = outcome
        return [o for o in out if o is not None]

    async def _evaluate(self, bundle: Bundle, calls: Sequence[PolicyCall]) -> list[PolicyOutcome]:
        if not calls:
            return []
        shared = shared_document(calls)
        preset = self.preset_request(bundle, calls, shared)
        if preset is not None:
            outcomes = await self._send(bundle, calls, preset)
            crashed = any(o.failure is not None and o.failure.code == ENGINE_CRASHED for o in outcomes)
            if crashed:
                # Never again for this policy set: its policies go back to one input each (below).
                self.presets_off.add(bundle.key)
                _log.warning("policy set %s crashed the engine with preset parameters; evaluating it "
                             "with one input per policy from now on", bundle.key)  # fmt: skip
            if not any(o.failure is not None and o.failure.code in _RETRY for o in outcomes):
                return outcomes
        if shared is None:
            request = EvaluateEach(bundle.key, [Call(bundle.entrypoints[pid], doc) for pid, doc in calls])
        else:
            entries = [Call(bundle.entrypoints[pid], doc["parameters"]) for pid, doc in calls]
            request = EvaluateEach(bundle.key, entries, shared)
        return await self._send(bundle, calls, request)

    def preset_request(
        self, bundle: Bundle, calls: Sequence[PolicyCall], shared: dict[str, Any] | None
    ) -> EvaluatePreset | None:
        """One input for the whole decision, when every policy is asked with the parameters it was compiled
        with (the active set: building the input is most of regopy's time, 3 policies → a third)."""
        if shared is None or bundle.key in self.presets_off:
            return None
        entries = []
        for pid, doc in calls:
            preset = bundle.preset.get(pid)
            if preset is None or preset[1] != doc["parameters"]:
                return None
            entries.append(preset[0])
        return EvaluatePreset(bundle.key, {**shared, "parameters": {}}, entries)

    async def _send(
        self, bundle: Bundle, calls: Sequence[PolicyCall], request: EvaluateEach | EvaluatePreset
    ) -> list[PolicyOutcome]:
        try:
            reply = await self.pool.evaluate(bundle.compile_request(), request)
        except WorkerFailure as exc:
            return [PolicyOutcome(pid, failure=Failure(exc.code, exc.message)) for pid, _ in calls]
        except BundleRejected as exc:
            return [PolicyOutcome(pid, failure=Failure(EVALUATION_ERROR, str(exc))) for pid, _ in calls]
        return [_outcome(pid, result) for (pid, _), result in zip(calls, reply.results, strict=True)]


def shared_document(calls: Sequence[PolicyCall]) -> dict[str, Any] | None:
    """The document the calls share when they differ only in ``parameters`` (then it is sent once)."""
    first = calls[0][1]
    if "parameters" not in first:
        return None
    shared = {k: v for k, v in first.items() if k != "parameters"}
    for _, doc in calls[1:]:
        if len(doc) != len(first) or "parameters" not in doc or any(doc.get(k) is not v for k, v in shared.items()):
            return None
    return shared


def _outcome(policy_id: str, result: Outcome) -> PolicyOutcome:
    if result.error_code:
        return PolicyOutcome(
            policy_id, failure=Failure(EVALUATION_ERROR, f"{result.error_code}: {result.error_message}")
        )
    if result.undefined:
        return PolicyOutcome(policy_id, failure=Failure(EVALUATION_UNDEFINED, "the policy's result is undefined"))
    return outcome_from_value(policy_id, result.value)


def outcome_from_value(policy_id: str, value: Any) -> PolicyOutcome:
    """Check a policy's ``{deny, warn, abort}`` value against the rule contract and normalise it."""
    if not isinstance(value, dict):
        return PolicyOutcome(policy_id, failure=Failure(INVALID_RESULT, f"expected an object, got {value!r:.100}"))
    try:
        deny = [_reason(policy_id, item) for item in value.get("deny") or []]
        warn = [_reason(policy_id, item) for item in value.get("warn") or []]
        abort = [_abort(item) for item in value.get("abort") or []]
    except ValueError as exc:
        return PolicyOutcome(policy_id, failure=Failure(INVALID_RESULT, str(exc)))
    key = lambda r: (r.get("code", ""), r.get("message", ""), r.get("promotion", ""))  # noqa: E731
    return PolicyOutcome(policy_id, sorted(deny, key=key), sorted(warn, key=key), sorted(abort, key=key))


def _reason(policy_id: str, item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"code": policy_id, "message": item}
    if isinstance(item, dict) and isinstance(item.get("code"), str):
        message = item.get("message")
        reason = {"code": item["code"], "message": message if isinstance(message, str) else str(message or "")}
        retry_after = item.get("retry_after")
        if isinstance(retry_after, str) and retry_after:
            reason["retry_after"] = retry_after[:64]  # when asking again can change the answer (RFC 3339)
        elif isinstance(retry_after, int) and not isinstance(retry_after, bool) and 0 < retry_after < 2**62:
            # Nanoseconds, as policies compute time (formatting differs between engines).
            reason["retry_after"] = datetime.fromtimestamp(retry_after // 1_000_000_000, UTC).isoformat()
        return reason
    raise ValueError(f"a deny/warn entry must be a string or an object with a string code, got {item!r:.200}")


def _abort(item: Any) -> dict[str, Any]:
    if isinstance(item, dict) and isinstance(item.get("promotion"), str):
        reason = item.get("reason")
        return {"promotion": item["promotion"], "reason": reason if isinstance(reason, str) else str(reason or "")}
    raise ValueError(f"an abort entry must be an object with a string promotion, got {item!r:.200}")
