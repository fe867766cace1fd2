"""Group commit for the decision log: concurrent answers share one transaction, and each waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import time

from policy_server.store import DecisionEntry, DecisionStore


class DecisionLogWriter:
    """Writes decisions in batches. ``record`` returns only once its batch is committed, so nothing answered
    is ever unlogged; while one batch is being committed the next one gathers, which is what makes a single
    SQLite writer (one fsync per transaction) serve many decisions at once."""

    def __init__(self, store: DecisionStore, *, max_batch: int = 200) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: list[tuple[DecisionEntry, asyncio.Future[tuple[str, int]]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Decisions waiting for their batch."""
        return len(self._pending)

    async def record(self, entry: DecisionEntry) -> tuple[str, int]:
        """Log ``entry`` with whatever else is waiting; the id of its row and that row's repeat count."""
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

    async def close(self, timeout_s: float = 10.0) -> None:
        """Finish what is waiting (for at most ``timeout_s``), then stop."""
        deadline = time.monotonic() + timeout_s
        while self._pending and self._task is not None and not self._task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
