"""Group commit for the decision log: concurrent answers share one transaction, and each waits for it; repeated
answers fold into their row in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from datetime import datetime

from policy_server.store import DecisionEntry, DecisionStore

_log = logging.getLogger("policy_server.decisions")
_RETRY_MAX_S = 5.0
"""The longest wait between two tries of folds the store could not take."""


class DecisionLogWriter:
    """Writes decisions in batches. ``record`` returns only once its batch is committed, so nothing answered
    is ever unlogged; while one batch is being committed the next one gathers, which is what makes a single
    SQLite writer (one fsync per transaction) serve many decisions at once.

    A repeated answer (the same answer as the question's last logged row, read when the question arrived) is a
    fold: one more on that row's ``repeat_count``. Its answer does not wait for a commit: the row is already
    logged, and folds are written together every ``fold_interval_s`` (before this process reads the log, and
    when the writer closes). A crash can lose the last interval's repeat counts, never a decision."""

    def __init__(self, store: DecisionStore, *, max_batch: int = 200, fold_interval_s: float = 0.05) -> None:
        self.store = store
        self.max_batch = max_batch
        self.fold_interval_s = fold_interval_s
        self._pending: list[tuple[DecisionEntry, asyncio.Future[tuple[str, int]]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._folds: dict[str, list[object]] = {}
        """Row id → [answers folded in and not yet written, the last one's time]."""
        self._fold_task: asyncio.Task[None] | None = None
        self._writing_folds = asyncio.Lock()
        """Held while folds are written: a reader of the log waits for a write already under way."""
        self._answered: OrderedDict[str, int] = OrderedDict()
        """Row id → the repeat count this process last answered with."""

    @property
    def backlog(self) -> int:
        """Decisions waiting for their batch."""
        return len(self._pending)

    def fold(self, last: tuple[str, str, int] | None, fold_key: str, at: datetime) -> tuple[str, int] | None:
        """When an answer given at ``at`` is the same (``fold_key``) as its question's last logged row (``last``: id,
        fold key, repeat count, as read when the question arrived), count it on that row, without waiting for a
        commit: the row's id and its repeat count now. None: it is a new answer, to ``record``."""
        if last is None or last[1] != fold_key or self.fold_interval_s <= 0:
            return None
        row_id = last[0]
        pending = self._pend(row_id, 1, at)
        # The row's count as read with this process's folds not written yet, and never less than one more than
        # this process last answered (a fold being written when the count was read is in neither); another
        # process's folds show once written.
        count = max(last[2] + pending, self._answered.get(row_id, 0) + 1)
        self._answered[row_id] = count
        self._answered.move_to_end(row_id)
        if len(self._answered) > 10_000:
            self._answered.popitem(last=False)
        return row_id, count

    def _pend(self, row_id: str, answers: int, at: datetime) -> int:
        """Count ``answers`` more on a row, the last at ``at``, to be written with the next folds; how many are
        pending on it now."""
        fold = self._folds.get(row_id)
        if fold is None:
            fold = self._folds[row_id] = [0, at]
        fold[0] = int(fold[0]) + answers  # type: ignore[call-overload]
        fold[1] = max(fold[1], at)  # type: ignore[type-var]
        if self._fold_task is None or self._fold_task.done():
            self._fold_task = asyncio.create_task(self._write_folds_later())
        return int(fold[0])  # type: ignore[call-overload]

    async def record(self, entry: DecisionEntry) -> tuple[str, int]:
        """Log ``entry`` with whatever else is waiting: the id of its row and that row's repeat count, once its
        batch is committed."""
        future: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await self.store.record_many([entry for entry, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter gets the failure (503 and the like)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    async def _write_folds_later(self) -> None:
        """Write the folds every interval until none are left: those gathered while a write was under way, and
        those a failed write kept (tried again later and later, up to ``_RETRY_MAX_S`` apart, while the store is
        unavailable)."""
        delay = self.fold_interval_s
        while True:
            await asyncio.sleep(delay)
            written = await self.write_folds()
            if not self._folds:
                return
            delay = self.fold_interval_s if written else min(delay * 2, _RETRY_MAX_S)

    async def write_folds(self) -> bool:
        """Write the folds gathered so far (kept for the next try if the store is unavailable: False). Returns once
        every fold gathered before the call is committed, including those another call was already writing."""
        async with self._writing_folds:
            folds, self._folds = self._folds, {}
            if not folds:
                return True
            repeats = [(row_id, int(n), at) for row_id, (n, at) in folds.items()]  # type: ignore[misc]
            try:
                await self.store.add_repeats(repeats)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - kept and tried again
                _log.warning("could not write %d folded answers yet; trying again", len(repeats), exc_info=True)
                for row_id, n, at in repeats:
                    self._pend(row_id, n, at)
                return False
            return True

    async def close(self, timeout_s: float = 10.0) -> None:
        """Finish what is waiting (for at most ``timeout_s``), write the folds, then stop."""
        deadline = time.monotonic() + timeout_s
        while self._pending and self._task is not None and not self._task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._fold_task is not None and not self._fold_task.done():
            self._fold_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fold_task
        with contextlib.suppress(Exception):
            await self.write_folds()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


__all__ = ["DecisionLogWriter"]
