"""Decision log entries for store tests."""

from __future__ import annotations

from datetime import datetime

from policy_server.store import DecisionEntry


def decision_entry(n: int, *, promotion: str | None, stage: str, fold: str, at: datetime) -> DecisionEntry:
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


def entry_id(n: int) -> str:
    return f"01KZ{n:022d}"
