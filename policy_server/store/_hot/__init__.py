"""The decision hot path: the few reads and the one write every decision makes, one implementation per database.

``Database`` chooses its implementation once, when it is built; the stores delegate to ``db.hot`` and hold no
dialect branches. ``PortableHotPath`` (SQLAlchemy) runs on every database and is the reference: the parity test
(tests/integration/test_hot_paths.py) runs the same cases over every implementation and compares with it.

Adding a database: an implementation of ``HotPath`` here (or the portable one), its engine in ``_db.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from policy_server.store._types import Claim, DecisionEntry, DecisionFacts, PrecomputedVerdict, Probe
from policy_server.store._versions import Versions

if TYPE_CHECKING:
    from policy_server.store._db import Database


@runtime_checkable
class HotPath(Protocol):
    """What a decision reads and writes, answered as fast as the database allows."""

    name: str
    """Which implementation (``portable``, ``sqlite``, ``postgresql``): in logs and benchmarks."""

    async def decision_facts(
        self, namespace: str, promotion: str | None, stage: str | None, freight: str | None, recent: int
    ) -> DecisionFacts:
        """From one snapshot: the Promotion (by name) or the Stage, the Stage's state, Freight, and versions."""
        ...

    async def versions(self, namespace: str, stage: str) -> Versions:
        """The state versions a decision about ``stage`` depends on."""
        ...

    async def current_claim(self, namespace: str, stage: str) -> Claim | None:
        """The Stage's start claim with its holder's phase now (live or not)."""
        ...

    async def probe(self, namespace: str, stage: str, promotion: str | None) -> Probe:
        """What a repeated decision checks, from one snapshot: ``versions``, the policy-set version, the claim and
        the last logged decision about ``promotion`` (None: the Stage's last prospective one)."""
        ...

    async def precomputed(self, namespace: str, promotion: str) -> PrecomputedVerdict | None:
        """The Promotion's precomputed verdict, valid or not (the caller checks it against a probe)."""
        ...

    async def record_decisions(self, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
        """Log decisions in one transaction, in order; an answer identical to the previous one for the same
        question folds into it. Per entry: the id of its row and that row's repeat count."""
        ...

    async def add_repeats(self, repeats: list[tuple[str, int, datetime]]) -> None:
        """Fold answers into logged rows already known to be their question's last: per row id, how many more
        times it was answered and when last (batched folds of repeated decisions)."""
        ...

    async def close(self) -> None:
        """Release connections of its own."""
        ...


def choose_hot_path(db: Database, fast: bool = True) -> HotPath:
    """The implementation for ``db``: its database's own when there is one (and ``fast``), else the portable."""
    from policy_server.store._hot._portable import PortableHotPath

    if fast and db.dialect == "sqlite" and db.sqlite_file is not None:
        from policy_server.store._hot._sqlite import SqliteHotPath

        return SqliteHotPath(db, db.sqlite_file)
    if fast and db.dialect == "postgresql":
        from policy_server.store._hot._postgres import PostgresHotPath

        return PostgresHotPath(db)
    return PortableHotPath(db)


__all__ = ["HotPath", "choose_hot_path"]
