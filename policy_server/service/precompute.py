"""Verdicts computed ahead of questions: when a Stage's recorded state changes, the verdicts on the first of its
queued Promotions are computed (once per Stage for changes that arrive together) and kept in the store, where the
next question about such a Promotion, in any server process, finds it and answers without evaluating, as long as
the state versions, the policy set and (when a policy reads the time) its expiry still hold.

The work is bounded by the Stages, not by the changes: a burst marks each Stage once, and only the head of each
queue is computed (``depth``), so a Stage with a long queue costs the same as one with a short queue. While the
watcher records its initial list nothing is computed (every verdict would be stale within the next page); the
Stages it marked are computed once it is done.

It is what a controller polling the gate, the enforcer and an admission webhook all ask right after a change;
the evaluation moves from the question's path to the change's, where it is coalesced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from policy_server import metrics
from policy_server.service.decisions import DecisionService
from policy_server.store import FREIGHT_SCOPE, PrecomputedVerdict, StateStore, VerdictStore

_log = logging.getLogger("policy_server.precompute")
_BATCH = 100
"""Stages computed together, their verdicts saved in one transaction."""
_HOLD_S = 0.1
_SHARE = 1 / 3
"""At most this share of the time goes to computing ahead while changes keep coming (the rest is the changes' own
recording, and the questions'): a batch that took t while changes arrived is followed by t × (1/share − 1) of rest.
Once they stop, the backlog is computed at full speed."""


class Precomputer:
    """Listens to recorded changes (``StateStore.listeners``) and keeps queued Promotions' verdicts current."""

    def __init__(
        self,
        decisions: DecisionService,
        state: StateStore,
        verdicts: VerdictStore,
        *,
        depth: int = 2,
        gather_s: float = 0.02,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.decisions = decisions
        self.state = state
        self.verdicts = verdicts
        self.depth = depth
        self.gather_s = gather_s
        self.ready = ready
        """While it says False (the watcher's initial list), marked Stages wait."""
        self._pending: set[tuple[str, str | None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._working = 0
        self._slots = asyncio.Semaphore(4)
        self._changed_at = 0.0
        """When a change was last marked (``perf_counter``)."""

    def changed(self, scopes: set[tuple[str, str]]) -> None:
        """A committed write moved these state-version scopes: mark their Stages (a Freight change: every Stage
        of the namespace)."""
        self._changed_at = time.perf_counter()
        for namespace, scope in scopes:
            self._pending.add((namespace, None if scope == FREIGHT_SCOPE else scope.removeprefix("stage/")))
        if self._pending:
            self._idle.clear()
            self._wake.set()
            metrics.PRECOMPUTE_BACKLOG.set(len(self._pending) + self._working)

    async def settled(self, timeout_s: float = 30.0) -> bool:
        """Wait until every marked Stage is done (tests and benchmarks); False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Take marked Stages as they come, until cancelled. Under a continuous stream of changes the batches space
        out (``_SHARE``): the next round takes more Stages at once, and the same Stage changed meanwhile is computed
        once."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.gather_s)  # the changes of one burst arrive together: take them as one
            while self.ready is not None and not self.ready():
                await asyncio.sleep(_HOLD_S)
            pending, self._pending = self._pending, set()
            self._working = len(pending)
            try:
                await self._stages(pending)
            except Exception:  # noqa: BLE001 - questions then evaluate, as without precomputation
                metrics.child(metrics.PRECOMPUTING, "failed").inc()
                _log.warning("precomputing verdicts failed; questions evaluate instead", exc_info=True)
            finally:
                self._working = 0
                metrics.PRECOMPUTE_BACKLOG.set(len(self._pending))
            if not self._pending:
                self._idle.set()

    async def _stage(self, namespace: str, stage: str) -> list[PrecomputedVerdict]:
        async with self._slots:
            verdicts = await self.decisions.precompute_stage(namespace, stage, self.depth)
            metrics.child(metrics.PRECOMPUTING, "computed").inc(len(verdicts))
            return verdicts

    async def _stages(self, marked: set[tuple[str, str | None]]) -> None:
        stages: set[tuple[str, str]] = set()
        for namespace, stage in marked:
            if stage is None:
                stages.update((namespace, s.name) for s in await self.state.list_stages(namespace))
            else:
                stages.add((namespace, stage))
        started = time.perf_counter()
        ordered = sorted(stages)
        for i in range(0, len(ordered), _BATCH):
            # A few at a time: the Rego workers evaluate while the next inputs are read.
            batch_started = time.perf_counter()
            found = await asyncio.gather(*(self._stage(ns, stage) for ns, stage in ordered[i : i + _BATCH]))
            await self.verdicts.save([v for verdicts in found for v in verdicts])
            if self._changed_at > batch_started:  # changes keep coming: leave them (and questions) their share
                await asyncio.sleep((time.perf_counter() - batch_started) * (1 / _SHARE - 1))
        if stages:
            _log.debug("precomputed %d Stage(s) in %.1f ms", len(stages), (time.perf_counter() - started) * 1000)
