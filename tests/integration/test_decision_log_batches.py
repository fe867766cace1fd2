"""The decision log folds repeated answers the same way within one batch and across batches, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from policy_server.store import Database, DecisionFilter, DecisionStore, upgrade
from policy_server.store._models import DecisionRow
from tests.integration.test_direct_sqlite import _entry, _id

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
