"""Computing verdicts ahead takes a bounded share of a server's time while changes keep coming: the rounds space
out and take more Stages each, instead of recomputing the same Stages back to back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from policy_server.service.precompute import Precomputer


class _Decisions:
    def __init__(self, cost_s: float) -> None:
        self.cost_s = cost_s
        self.busy = 0.0
        self.rounds: list[int] = []

    async def precompute_stage(self, namespace: str, stage: str, depth: int | None = None) -> list[Any]:
        started = time.perf_counter()
        await asyncio.sleep(self.cost_s)
        self.busy += time.perf_counter() - started
        return []


class _Verdicts:
    async def save(self, verdicts: list[Any]) -> None:
        return None


async def test_a_continuous_stream_of_changes_gets_at_most_a_third_of_the_time():
    decisions = _Decisions(cost_s=0.03)  # one Stage's verdicts take 30 ms
    precomputer = Precomputer(decisions, None, _Verdicts(), gather_s=0.02)  # type: ignore[arg-type]
    runner = asyncio.create_task(precomputer.run())
    started = time.perf_counter()
    changes = 0
    while time.perf_counter() - started < 1.5:  # the same Stage changes every 5 ms
        precomputer.changed({("ingest", "stage/stage-1")})
        changes += 1
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    assert await precomputer.settled(5)
    runner.cancel()
    share = decisions.busy / elapsed
    # Back to back (a round every 20 ms of gathering) it was 0.6 of the time; the bound is a third.
    assert 0.15 < share < 0.42, share
    assert changes > 200


async def test_a_change_after_a_quiet_time_is_computed_at_once():
    """A long round (say the initial list) does not delay a change that comes long after it."""
    decisions = _Decisions(cost_s=0.3)
    precomputer = Precomputer(decisions, None, _Verdicts(), gather_s=0.02)  # type: ignore[arg-type]
    runner = asyncio.create_task(precomputer.run())
    precomputer.changed({("ingest", "stage/stage-1")})
    assert await precomputer.settled(5)
    await asyncio.sleep(0.7)  # quiet for longer than the rest the 0.3 s round asks for
    decisions.cost_s = 0.0
    marked = time.perf_counter()
    precomputer.changed({("ingest", "stage/stage-2")})
    assert await precomputer.settled(5)
    assert time.perf_counter() - marked < 0.3
    runner.cancel()


async def test_a_backlog_left_when_changes_stop_is_computed_at_full_speed():
    """The share holds while changes keep coming; once they stop, what is marked is computed without rests."""
    decisions = _Decisions(cost_s=0.01)  # 400 Stages, 4 at a time: 1 s of work
    precomputer = Precomputer(decisions, None, _Verdicts(), gather_s=0.02)  # type: ignore[arg-type]
    runner = asyncio.create_task(precomputer.run())
    started = time.perf_counter()
    precomputer.changed({("ingest", f"stage/stage-{n}") for n in range(400)})
    while time.perf_counter() - started < 0.2:  # and changes for 0.2 s more
        precomputer.changed({("ingest", "stage/busy")})
        await asyncio.sleep(0.005)
    assert await precomputer.settled(10)
    runner.cancel()
    elapsed = time.perf_counter() - started
    # Resting after each round for twice its length (the rule before), it took 3.3 s; a third of the time
    # throughout would take 3 s. Here: one rest after the first batch (while changes still came), then full speed.
    assert elapsed < 2.2, elapsed
    assert decisions.busy >= 400 * 0.01
