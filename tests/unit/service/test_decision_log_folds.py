"""Repeated answers fold into their logged row in batches; whoever reads the log first has every fold written,
including a batch another task was already writing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from policy_server.service.decision_log import DecisionLogWriter


class _SlowStore:
    def __init__(self) -> None:
        self.written: list[tuple[str, int, datetime]] = []
        self.writing = asyncio.Event()
        self.release = asyncio.Event()

    async def add_repeats(self, repeats: list[tuple[str, int, datetime]]) -> None:
        self.writing.set()
        await self.release.wait()
        self.written += repeats


async def test_reading_the_log_waits_for_folds_another_task_is_writing():
    store = _SlowStore()
    writer = DecisionLogWriter(store, fold_interval_s=0.01)  # type: ignore[arg-type]
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert writer.fold(("row-1", "same answer", 1), "same answer", at) == ("row-1", 2)
    await asyncio.wait_for(store.writing.wait(), 5)  # the timed write took the fold and is committing it
    before_reading = asyncio.ensure_future(writer.write_folds())  # what the log's readers call first
    await asyncio.sleep(0.05)
    assert not before_reading.done()  # it would read the row without the fold being committed
    store.release.set()
    await asyncio.wait_for(before_reading, 5)
    assert store.written == [("row-1", 1, at)]


async def test_a_different_answer_does_not_fold():
    writer = DecisionLogWriter(_SlowStore(), fold_interval_s=0.01)  # type: ignore[arg-type]
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert writer.fold(("row-1", "deny", 3), "allow", at) is None
    assert writer.fold(None, "allow", at) is None
