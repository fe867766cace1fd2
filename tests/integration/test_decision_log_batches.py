"""The decision log folds repeated answers the same way within one batch and across batches, on both stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from ulid import ULID

from policy_server.store import Database, DecisionEntry, DecisionFilter, DecisionStore, upgrade
from policy_server.store._models import DecisionRow
from tests.support.decisions import decision_entry as _entry
from tests.support.decisions import entry_id as _id

AT = datetime(2026, 11, 1, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return AT + timedelta(seconds=seconds)


async def test_folding_within_and_across_batches(database_url):
    db = Database(database_url)
    await upgrade(db)
    store = DecisionStore(db)
    try:
        first = await store.record_many([_entry(1, promotion="p1", stage="prod", fold="deny", at=_at(0))])
        second = await store.record_many(
            [
                _entry(2, promotion="p1", stage="prod", fold="deny", at=_at(1)),  # folds into 1 (earlier batch)
                _entry(3, promotion=None, stage="prod", fold="allow", at=_at(2)),  # a prospective question
                _entry(4, promotion="p1", stage="prod", fold="deny", at=_at(3)),  # folds into 1 again
                _entry(5, promotion=None, stage="prod", fold="allow", at=_at(4)),  # folds into 3 (same batch)
                _entry(6, promotion="p1", stage="prod", fold="allow", at=_at(5)),  # a new answer for p1
                _entry(7, promotion="p1", stage="prod", fold="allow", at=_at(6)),  # folds into 6 (same batch)
                _entry(8, promotion="p2", stage="prod", fold="deny", at=_at(7)),
            ]
        )
        assert first == [(_id(1), 1)]
        assert second == [(_id(1), 2), (_id(3), 1), (_id(1), 3), (_id(3), 2), (_id(6), 1), (_id(6), 2), (_id(8), 1)]
        async with db.read() as conn:
            rows = (
                await conn.execute(select(DecisionRow.id, DecisionRow.repeat_count, DecisionRow.last_at).order_by("id"))
            ).all()
        assert [(r.id, r.repeat_count, r.last_at) for r in rows] == [
            (_id(1), 3, _at(3)),
            (_id(3), 2, _at(4)),
            (_id(6), 2, _at(6)),
            (_id(8), 1, _at(7)),
        ]
        listed = await store.list(DecisionFilter(namespace="kargo-demo", code="not_queue_head"))
        assert [d.id for d in listed] == [_id(8), _id(1)]
        assert (await store.get(_id(6))).input == {"namespace": "kargo-demo", "n": 6}
    finally:
        await db.dispose()


def _timed(n: int, at: datetime, reasons: list[tuple[str, str, str]], promotion: str | None = None) -> DecisionEntry:
    """An entry whose id is the ULID of its evaluation time, as the service makes them."""
    return replace(
        _entry(n, promotion=promotion or f"p{n}", stage="prod", fold=f"f{n}", at=at),
        id=str(ULID.from_datetime(at)),
        reasons=reasons,
        allow=not reasons,
    )


async def test_browsing_by_reason_and_time(database_url):
    """Filters on reasons and on time give each matching decision once, newest first, page after page."""
    db = Database(database_url)
    await upgrade(db)
    store = DecisionStore(db)
    twice = [("deny", "a", "not_queue_head"), ("deny", "b", "not_queue_head"), ("warn", "a", "slow")]
    once = [("deny", "a", "verification_in_progress")]
    entries = [_timed(n, _at(60 * n), twice if n % 3 == 0 else once if n % 3 == 1 else []) for n in range(30)]
    try:
        for start in range(0, 30, 7):
            await store.record_many(entries[start : start + 7])
        # The oldest decision is given again much later: it folds, so its last_at moves but its id stays.
        again = replace(entries[0], id=str(ULID.from_datetime(_at(3600))), evaluated_at=_at(3600))
        assert await store.record_many([again]) == [(entries[0].id, 2)]
        newest_first = [e.id for e in reversed(entries)]

        async def pages(where: DecisionFilter, size: int) -> list[str]:
            seen: list[str] = []
            while True:
                page = await store.list(where, before=seen[-1] if seen else None, limit=size)
                seen += [d.id for d in page]
                if len(page) < size:
                    return seen

        by_code = [e.id for e in reversed(entries) if e.reasons is twice]
        assert await pages(DecisionFilter(code="not_queue_head"), 3) == by_code
        assert await pages(DecisionFilter(policy="b"), 4) == by_code
        assert await pages(DecisionFilter(policy="a", code="slow"), 2) == by_code
        assert await pages(DecisionFilter(policy="b", code="verification_in_progress"), 2) == []
        assert await pages(DecisionFilter(code="verification_in_progress", allow=False), 50) == [
            e.id for e in reversed(entries) if e.reasons is once
        ]

        # until is inclusive to the microsecond; since matches on the last time a decision was given.
        until = entries[12].evaluated_at
        assert await pages(DecisionFilter(until=until), 5) == newest_first[-13:]
        assert await pages(DecisionFilter(until=until - timedelta(microseconds=1)), 5) == newest_first[-12:]
        assert await pages(DecisionFilter(until=until.replace(tzinfo=None)), 50) == newest_first[-13:]
        window = DecisionFilter(since=_at(60 * 20), until=_at(60 * 25))
        assert await pages(window, 2) == newest_first[4:10] + [entries[0].id]
        assert await pages(DecisionFilter(since=_at(60 * 29 + 1)), 50) == [entries[0].id]
        assert await pages(DecisionFilter(code="not_queue_head", until=_at(60 * 10)), 1) == [
            e.id for e in reversed(entries[:11]) if e.reasons is twice
        ]
    finally:
        await db.dispose()
