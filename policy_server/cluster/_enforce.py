"""The enforcer: when recorded state changes in a way that can produce abort actions, decide again for the
affected Stage and apply each abort action as the merge patch the decision carries.

What triggers a Stage: a recorded change of the Stage, of one of its Promotions or AnalysisRuns, or of a Freight
of its namespace (then every Stage there); when this replica becomes the leader, and every ``sweep_s``, every
recorded Stage (what changed while another replica led, or a patch that failed, is taken up again). For each
triggered Stage every queued Promotion is decided again (logged, with ``enforcer`` as the caller) and the abort
actions of those decisions are applied once each:

- a Promotion already terminal or already carrying Kargo's abort annotation is ``already_done`` (nothing sent);
- ``dry-run`` records what would be done (``dry_run``) and sends nothing;
- ``on`` sends the merge patch, retrying what may heal (a lost connection, 409, 429, 5xx) with backoff, and
  records ``applied`` with a Kubernetes Event on the Promotion (``kubectl describe promotion`` shows which policy
  aborted it and why) and an audit entry; a refusal (403 for a missing RBAC permission, 422) is ``failed`` with
  the API server's reason, logged as an error, and tried again at the next sweep.

Only the replica holding the Lease enforces (``LeaseElector``); with one replica and no Lease, that one does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from policy_server import metrics
from policy_server.kargo import Kind, abort_patch, parse_object
from policy_server.service.decisions import Decision, DecisionService, Question
from policy_server.service.verdict import AbortAction
from policy_server.store import AccessStore, ActionOutcome, StateStore

log = logging.getLogger("policy_server.enforce")
Mode = Literal["off", "dry-run", "on"]
_RETRIABLE = {409, 429, 500, 502, 503, 504}
_REMEMBER_S = 300.0
_GONE = "gone"


class Leadership(Protocol):
    """Whether this replica may act now."""

    @property
    def leading(self) -> bool: ...


class _Always:
    leading = True


class Enforcer:
    """Decides again for changed Stages and applies their abort actions (see the module's docstring)."""

    def __init__(
        self,
        api: client.ApiClient,
        decisions: DecisionService,
        state: StateStore,
        audit: AccessStore,
        mode: Mode = "dry-run",
        *,
        leadership: Leadership | None = None,
        identity: str = "policy-server",
        sweep_s: float = 60.0,
    ) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.decisions = decisions
        self.state = state
        self.audit = audit
        self.mode = mode
        self.leadership = leadership or _Always()
        self.identity = identity
        self.sweep_s = sweep_s
        self._pending: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._done: dict[tuple[str, str], float] = {}
        """(namespace, promotion) → when its abort was taken on: once, whichever decision asks again."""

    # --- what to look at ------------------------------------------------------------------------

    def notice(self, documents: Iterable[dict[str, Any]]) -> None:
        """Recorded objects or watch events: mark the Stages they can change."""
        if self.mode == "off":
            return
        for document in documents:
            raw = document.get("object", document) if "type" in document else document
            for key in _stages_of(raw):
                self._pending.add(key)
        if self._pending:
            self._wake.set()

    async def run(self) -> None:
        """Take on marked Stages as they come (shortly coalesced), every Stage when leadership is gained and at
        every sweep, until cancelled."""
        if self.mode == "off":
            return
        was_leading = False
        last_sweep = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            self._wake.clear()
            leading = self.leadership.leading
            if not leading:
                was_leading = False
                self._pending.clear()
                continue
            if not was_leading or time.monotonic() - last_sweep >= self.sweep_s:
                await self._mark_every_stage()
                was_leading, last_sweep = True, time.monotonic()
            await asyncio.sleep(0.02)  # events of one change arrive together: take them as one
            pending, self._pending = await self._expand(self._pending), set()
            for namespace, stage in pending:
                if not self.leadership.leading:
                    break
                try:
                    await self.enforce_stage(namespace, stage)
                except Exception:  # noqa: BLE001 - one Stage's trouble must not stop the others
                    log.exception("enforcing on Stage %s/%s failed; retried at the next sweep", namespace, stage)
            self._forget_old()

    async def _expand(self, marked: set[tuple[str, str]]) -> list[tuple[str, str]]:
        """Marked Stages, with "every Stage of the namespace" (a Freight changed) spelled out."""
        out: set[tuple[str, str]] = set()
        for namespace, stage in marked:
            if stage == "*":
                out.update((namespace, s.name) for s in await self.state.list_stages(namespace))
            else:
                out.add((namespace, stage))
        return sorted(out)

    async def _mark_every_stage(self) -> None:
        for namespace, _count in await self.state.namespaces():
            for stage in await self.state.list_stages(namespace):
                self._pending.add((namespace, stage.name))

    # --- deciding and acting --------------------------------------------------------------------

    async def enforce_stage(self, namespace: str, stage: str) -> list[ActionOutcome]:
        """Decide again for every queued Promotion of the Stage; take on each abort action once."""
        state = await self.state.stage_state(namespace, stage, recent=0)
        if state is None:
            return []
        wanted: dict[str, tuple[Decision, AbortAction]] = {}
        for promotion in state.queue:
            decision = await self.decisions.decide(
                Question(namespace, promotion=promotion.name, caller=f"enforcer ({self.identity})")
            )
            for action in decision.verdict.actions:
                wanted.setdefault(action.promotion, (decision, action))
        outcomes = []
        for name, (decision, action) in sorted(wanted.items()):
            outcome = await self._take_on(namespace, name, decision, action)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def _take_on(
        self, namespace: str, name: str, decision: Decision, action: AbortAction
    ) -> ActionOutcome | None:
        key = (namespace, name)
        if key in self._done:
            return None
        found = await self.state.promotion(namespace, name)
        if found is None:
            return await self._outcome(key, decision, "already_done", "the Promotion is gone")
        stored, facts = found
        if facts.terminal:
            return await self._outcome(key, decision, "already_done", f"the Promotion is {facts.phase}")
        if facts.abort_requested:
            return await self._outcome(key, decision, "already_done", "the Promotion already carries the abort request")
        if self.mode == "dry-run":
            return await self._outcome(key, decision, "dry_run", f"would abort: {action.policy}: {action.reason}")
        error = await self._patch(namespace, name)
        if error == _GONE:
            return await self._outcome(key, decision, "already_done", "the Promotion is gone (deleted meanwhile)")
        if error is not None:
            log.error("could not abort Promotion %s/%s (%s): %s", namespace, name, action.policy, error)
            outcome = ActionOutcome(decision.id, namespace, name, "abort", "failed", error, datetime.now(UTC))
            await self.decisions.decisions.record_outcome(outcome)
            metrics.ENFORCED.labels("abort", "failed").inc()
            return outcome  # not remembered: the next sweep tries again
        self._done[key] = time.monotonic()  # patched: whatever happens next, not patched again
        await self._event(namespace, name, stored.object, decision, action)
        await self.audit.record(
            f"enforcer ({self.identity})",
            "promotion.abort",
            f"promotion/{namespace}/{name}",
            None,
            None,
            {"decision": decision.id, "policy": action.policy, "reason": action.reason},
        )
        detail = f"{action.policy}: {action.reason}"
        return await self._outcome(key, decision, "applied", detail)

    async def _outcome(self, key: tuple[str, str], decision: Decision, outcome: str, detail: str) -> ActionOutcome:
        namespace, name = key
        record = ActionOutcome(decision.id, namespace, name, "abort", outcome, detail, datetime.now(UTC))
        await self.decisions.decisions.record_outcome(record)
        metrics.ENFORCED.labels("abort", outcome).inc()
        self._done[key] = time.monotonic()
        log.info("abort %s/%s: %s (%s; decision %s)", namespace, name, outcome, detail, decision.id)
        return record

    async def _patch(self, namespace: str, name: str) -> str | None:
        """Send the abort merge patch; None when it was applied, else why not (after retrying what may heal)."""
        delay = 0.2
        for attempt in range(5):
            try:
                await self.custom.patch_namespaced_custom_object(
                    "kargo.akuity.io",
                    "v1alpha1",
                    namespace,
                    "promotions",
                    name,
                    abort_patch(),
                    _content_type="application/merge-patch+json",
                )
                return None
            except ApiException as exc:
                if exc.status == 404:
                    return _GONE
                if exc.status not in _RETRIABLE or attempt == 4:
                    return f"{exc.status} {exc.reason}: {_message(exc)}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if attempt == 4:
                    return f"the API server is unreachable: {exc}"
            await asyncio.sleep(delay)
            delay *= 2
        return "gave up"

    async def _event(
        self, namespace: str, name: str, obj: dict[str, Any], decision: Decision, action: AbortAction
    ) -> None:
        """A Kubernetes Event on the Promotion: which policy aborted it and why."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"policy {action.policy} aborted this Promotion: {action.reason} (decision {decision.id})"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name[:200]}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "kind": "Promotion",
                "name": name,
                "namespace": namespace,
                "uid": (obj.get("metadata") or {}).get("uid"),
            },
            "reason": "AbortedByPolicy",
            "message": message[:1000],
            "type": "Warning",
            "source": {"component": "policy-server"},
            "reportingComponent": "policy-server",
            "reportingInstance": self.identity[:128],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.core.create_namespaced_event(namespace, body)
        except (ApiException, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("could not record an Event on Promotion %s/%s: %s", namespace, name, exc)

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - _REMEMBER_S
        for key in [k for k, at in self._done.items() if at < cutoff]:
            del self._done[key]


def _stages_of(raw: dict[str, Any]) -> set[tuple[str, str]]:
    """The Stages a changed object can affect: its own, or (a Freight) those of its namespace ("*")."""
    kind = raw.get("kind")
    namespace = (raw.get("metadata") or {}).get("namespace")
    if not namespace:
        return set()
    if kind == "Freight":
        return {(namespace, "*")}
    if kind not in (Kind.STAGE.value, Kind.PROMOTION.value, Kind.ANALYSIS_RUN.value):
        return set()
    if kind == "Stage":
        name = (raw.get("metadata") or {}).get("name")
        return {(namespace, name)} if name else set()
    try:
        stage = parse_object(raw, Kind(kind)).columns.get("stage")
    except Exception:  # noqa: BLE001 - an object the store refused triggers nothing
        return set()
    return {(namespace, stage)} if stage else set()


def _message(exc: ApiException) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or str(exc.body)[:300]
    except (TypeError, ValueError):
        return str(exc.body)[:300] if exc.body else ""
