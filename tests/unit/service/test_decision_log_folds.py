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


class _FlakyStore:
    """Refuses the first ``failures`` writes (as a store that is unavailable for a while), then takes them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.written: list[tuple[str, int, datetime]] = []
        self.tries = 0

    async def add_repeats(self, repeats: list[tuple[str, int, datetime]]) -> None:
        self.tries += 1
        if self.tries <= self.failures:
            raise ConnectionError("the database is unavailable")
        self.written += repeats


async def _until(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)


async def test_folds_a_timed_write_could_not_write_are_written_later_without_another_answer():
    store = _FlakyStore(failures=2)
    writer = DecisionLogWriter(store, fold_interval_s=0.01)  # type: ignore[arg-type]
    at = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    writer.fold(("row-1", "same answer", 1), "same answer", at)
    writer.fold(("row-1", "same answer", 1), "same answer", at)
    # No further answer, no reader of the log: the timed write tries again on its own.
    await _until(lambda: store.written)
    assert store.written == [("row-1", 2, at)]
    assert store.tries == 3


async def test_folds_gathered_while_a_timed_write_is_under_way_are_written_without_another_answer():
    store = _SlowStore()
    writer = DecisionLogWriter(store, fold_interval_s=0.01)  # type: ignore[arg-type]
    first, second = datetime(2026, 12, 2, 12, 0, tzinfo=UTC), datetime(2026, 12, 2, 12, 1, tzinfo=UTC)
    writer.fold(("row-1", "same answer", 1), "same answer", first)
    await asyncio.wait_for(store.writing.wait(), 5)
    writer.fold(("row-2", "same answer", 4), "same answer", second)  # while the first write is committing
    store.release.set()
    await _until(lambda: len(store.written) == 2)
    assert store.written == [("row-1", 1, first), ("row-2", 1, second)]
