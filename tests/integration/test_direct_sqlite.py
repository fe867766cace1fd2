"""The SQLite hot path (stdlib sqlite3) reads and writes exactly what the SQLAlchemy path does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from policy_server.errors import Unavailable
from policy_server.kargo import Kind, parse_body
from policy_server.store import Database, DecisionEntry, DecisionStore, StateStore, upgrade
from policy_server.store._models import DecisionInputRow, DecisionReasonRow, DecisionRow
from policy_server.store._state import TABLES
from tests.integration.conftest import watch_lines


def _portable(path: Path) -> Database:
    """A Database on the same file with the direct path switched off: the reference."""
    db = Database(f"sqlite+aiosqlite:///{path}")
    db.direct = None
    return db


async def _questions(db: Database) -> list[tuple[str, str | None, str | None]]:
    async with db.read() as conn:
        promotions = (
            await conn.execute(select(TABLES[Kind.PROMOTION].c.namespace, TABLES[Kind.PROMOTION].c.name))
        ).all()
        stages = (await conn.execute(select(TABLES[Kind.STAGE].c.namespace, TABLES[Kind.STAGE].c.name))).all()
    return (
        [(ns, name, None) for ns, name in promotions]
        + [(ns, None, name) for ns, name in stages]
        + [
            ("kargo-demo", "missing", None),
            ("kargo-demo", None, "missing"),
        ]
    )


async def test_decision_facts_match_at_every_step_of_the_watch_stream(tmp_path, fixtures_dir):
    path = tmp_path / "store.db"
    direct = Database(f"sqlite+aiosqlite:///{path}")
    assert direct.direct is not None
    await upgrade(direct)
    reference = _portable(path)
    compared = 0
    try:
        for line in watch_lines(fixtures_dir):
            await StateStore(direct).apply(parse_body(line.encode(), "application/x-ndjson"))
            for namespace, promotion, stage in await _questions(direct):
                for freight in (None, "759376cafc8e421500b205c6eef4f1989c05217f"):
                    fast = await StateStore(direct).decision_facts(
                        namespace, promotion=promotion, stage=stage, freight=freight
                    )
                    slow = await StateStore(reference).decision_facts(
                        namespace, promotion=promotion, stage=stage, freight=freight
                    )
                    assert fast == slow, (namespace, promotion, stage, freight)
                    compared += 1
    finally:
        await direct.dispose()
        await reference.dispose()
    assert compared > 100


def _entry(n: int, *, promotion: str | None, stage: str, fold: str, at: datetime) -> DecisionEntry:
    return DecisionEntry(
        id=f"01KZ{n:022d}",
        namespace="kargo-demo",
        stage=stage,
        promotion=promotion,
        prospective=promotion is None,
        freight=None,
        allow=fold == "allow",
        claimed=False,
        evaluated_at=at,
        fold_key=fold,
        input_hash="h" * 64,
        duration_ms=1.25,
        caller="test ✓",
        result={"allow": fold == "allow", "message": "naïve"},
        input={"namespace": "kargo-demo", "n": n},
        reasons=[] if fold == "allow" else [("deny", "admission", "not_queue_head"), ("warn", "x", "y")],
    )


async def _rows(path: Path) -> tuple[list, list]:
    db = _portable(path)
    try:
        async with db.read() as conn:
            decisions = [tuple(r) for r in (await conn.execute(select(DecisionRow).order_by(DecisionRow.id))).all()]
            reasons = (await conn.execute(select(DecisionReasonRow.__table__))).all()
            inputs = (await conn.execute(select(DecisionInputRow.__table__))).all()
    finally:
        await db.dispose()
    return decisions, sorted(tuple(r) for r in reasons) + sorted(tuple(r) for r in inputs)


async def test_the_decision_log_is_written_the_same_way_and_folds_the_same(tmp_path):
    at = datetime(2026, 11, 1, tzinfo=UTC)
    batches = [
        [_entry(1, promotion="p1", stage="prod", fold="deny", at=at)],
        [
            _entry(2, promotion="p1", stage="prod", fold="deny", at=at + timedelta(seconds=1)),  # folds into 1
            _entry(3, promotion=None, stage="prod", fold="allow", at=at + timedelta(seconds=2)),
            _entry(4, promotion="p1", stage="prod", fold="allow", at=at + timedelta(seconds=3)),  # new answer
            _entry(5, promotion=None, stage="prod", fold="allow", at=at + timedelta(seconds=4)),  # folds into 3
        ],
    ]
    results = {}
    for mode in ("direct", "portable"):
        path = tmp_path / f"{mode}.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        await upgrade(db)
        if mode == "portable":
            db.direct = None
        store = DecisionStore(db)
        answers = [await store.record_many(batch) for batch in batches]
        await db.dispose()
        results[mode] = (answers, await _rows(path))
    assert results["direct"] == results["portable"]
    answers, (decisions, reasons) = results["direct"]
    assert answers == [
        [("01KZ" + "1".zfill(22), 1)],
        [("01KZ" + "1".zfill(22), 2), (_id(3), 1), (_id(4), 1), (_id(3), 2)],
    ]
    assert len(decisions) == 3 and len(reasons) == 2 + 3  # two reasons, three inputs


def _id(n: int) -> str:
    return f"01KZ{n:022d}"


async def test_claims_read_the_same(tmp_path, fixtures_dir):
    path = tmp_path / "store.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await upgrade(db)
    reference = _portable(path)
    try:
        for line in watch_lines(fixtures_dir):
            await StateStore(db).apply(parse_body(line.encode(), "application/x-ndjson"))
        now = datetime.now(UTC)
        store = DecisionStore(db)
        assert await store.current_claim("kargo-demo", "prod") is None
        await store.claim("kargo-demo", "prod", "prod.01kztrdxmgg3c76w16pjvk9zds.759376c", _id(9), now, now)
        await store.claim("kargo-demo", "uat", "gone", _id(10), now, now + timedelta(minutes=2))
        for stage in ("prod", "uat", "test"):
            assert await store.current_claim("kargo-demo", stage) == await DecisionStore(reference).current_claim(
                "kargo-demo", stage
            )
        claim = await store.current_claim("kargo-demo", "prod")
        assert claim is not None and claim.holder_phase is not None and claim.claimed_at == now
    finally:
        await db.dispose()
        await reference.dispose()


async def test_a_failed_batch_keeps_nothing_and_is_reported_unavailable(tmp_path):
    path = tmp_path / "store.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await upgrade(db)
    async with db.write() as conn:
        await conn.execute(text("DROP TABLE decision_reasons"))
    with pytest.raises(Unavailable) as raised:
        await DecisionStore(db).record_many(
            [_entry(1, promotion="p1", stage="prod", fold="deny", at=datetime.now(UTC))]
        )
    assert "decision_reasons" in str(raised.value)
    # Nothing of the failed batch was kept.
    async with db.read() as conn:
        assert (await conn.execute(select(DecisionRow.id))).all() == []
    await db.dispose()
