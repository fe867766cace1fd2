"""Row shapes, defined once: Kargo objects and decisions as rows, rows back as the store's value types.

Every path to the database (SQLAlchemy, direct sqlite3, asyncpg) writes and reads these shapes; string columns
are cut to the lengths the models declare.
"""

from __future__ import annotations

import json
import zlib
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Column, Table

from policy_server.kargo import KargoObject, Kind, ObjectKey, PromotionFacts, RunFacts
from policy_server.store._models import (
    AnalysisRunRow,
    DecisionInputRow,
    DecisionReasonRow,
    DecisionRow,
    FreightRow,
    PromotionRow,
    StageRow,
)
from policy_server.store._types import DecisionEntry, LoggedDecision, PrecomputedVerdict, StoredObject

TABLES: dict[Kind, Table] = {
    Kind.STAGE: StageRow.__table__,  # type: ignore[dict-item]
    Kind.PROMOTION: PromotionRow.__table__,  # type: ignore[dict-item]
    Kind.FREIGHT: FreightRow.__table__,  # type: ignore[dict-item]
    Kind.ANALYSIS_RUN: AnalysisRunRow.__table__,  # type: ignore[dict-item]
}
DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
DECISION_INPUTS: Table = DecisionInputRow.__table__  # type: ignore[assignment]
DECISION_REASONS: Table = DecisionReasonRow.__table__  # type: ignore[assignment]

PROMOTION_COLUMNS = (
    "namespace",
    "name",
    "stage",
    "freight",
    "phase",
    "queue_key",
    "created_at",
    "started_at",
    "finished_at",
    "freight_collection",
    "abort_requested",
)
"""A Promotion's facts, in ``PromotionFacts`` order."""
RUN_COLUMNS = (
    "namespace",
    "name",
    "stage",
    "freight_collection",
    "promotion",
    "phase",
    "terminated",
    "created_at",
    "started_at",
    "completed_at",
)
"""An AnalysisRun's facts, in ``RunFacts`` order."""
STAGE_COLUMNS = (
    "namespace",
    "name",
    "resource_version",
    "deleted",
    "created_at",
    "recorded_at",
    "object",
    "has_verification",
    "health_status",
    "current_promotion",
    "last_promotion",
    "current_freight_collection",
)
"""What a Stage's state reads of its row."""

_json = msgspec.json.Encoder()


class AttrRow(dict[str, Any]):
    """A row by column name, read as attributes (rows that a raw driver returns, for ``stage_state``)."""

    __getattr__ = dict.__getitem__

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def fit(column: Column[Any], value: str) -> str:
    """``value`` cut to the column's declared length."""
    length = getattr(column.type, "length", None)
    return value[:length] if length else value


def object_row(obj: KargoObject, deleted: bool, now: datetime) -> dict[str, Any]:
    """A Kargo object's row (its kind's table)."""
    return {
        "namespace": obj.key.namespace,
        "name": obj.key.name,
        "uid": obj.uid,
        "resource_version": obj.resource_version,
        "deleted": deleted,
        "created_at": obj.created_at,
        "recorded_at": now,
        "object": _json.encode(obj.raw).decode(),
        **obj.columns,
    }


def stored(kind: Kind, row: Any) -> StoredObject:
    """A row (with attribute access) as the recorded object."""
    return StoredObject(
        key=ObjectKey(kind, row.namespace, row.name),
        resource_version=row.resource_version,
        deleted=bool(row.deleted),
        created_at=row.created_at,
        recorded_at=row.recorded_at,
        object=msgspec.json.decode(row.object),
    )


def promotion_facts(row: Any) -> PromotionFacts:
    """A row with ``PROMOTION_COLUMNS`` (attribute access) as facts."""
    return PromotionFacts(**{c: getattr(row, c) for c in PROMOTION_COLUMNS})


def run_facts(row: Any) -> RunFacts:
    """A row with ``RUN_COLUMNS`` (attribute access) as facts."""
    return RunFacts(**{c: getattr(row, c) for c in RUN_COLUMNS})


def decision_row(entry: DecisionEntry) -> dict[str, Any]:
    """A new decision's row (``repeat_count`` 1, ``last_at`` = ``evaluated_at``)."""
    d = DECISIONS.c
    return {
        "id": entry.id,
        "namespace": entry.namespace,
        "stage": entry.stage,
        "promotion": entry.promotion,
        "prospective": entry.prospective,
        "freight": entry.freight,
        "allow": entry.allow,
        "claimed": entry.claimed,
        "evaluated_at": entry.evaluated_at,
        "last_at": entry.evaluated_at,
        "repeat_count": 1,
        "fold_key": entry.fold_key,
        "input_hash": entry.input_hash,
        "duration_ms": entry.duration_ms,
        "caller": fit(d.caller, entry.caller),
        "result": _json.encode(entry.result).decode(),
    }


def input_row(entry: DecisionEntry) -> dict[str, Any]:
    """A new decision's input row."""
    encoding, body = entry.stored_input or encode_input(entry.input)
    return {"decision_id": entry.id, "encoding": encoding, "body": body}


def reason_rows(entry: DecisionEntry) -> list[dict[str, Any]]:
    """A new decision's reason rows (what the log filters by)."""
    r = DECISION_REASONS.c
    return [
        {
            "decision_id": entry.id,
            "position": i,
            "kind": kind,
            "policy": fit(r.policy, policy),
            "code": fit(r.code, code),
        }
        for i, (kind, policy, code) in enumerate(entry.reasons)
    ]


def fold_subject(entry: DecisionEntry) -> tuple[Any, ...]:
    """The question a logged row answers: a Promotion, or a prospective one on a Stage."""
    return (entry.namespace, entry.promotion) if entry.promotion is not None else (entry.namespace, None, entry.stage)


def logged(row: Any, *, with_input: bool) -> LoggedDecision:
    """A decision row (and its input's ``encoding``/``body`` when ``with_input``) as logged."""
    return LoggedDecision(
        id=row.id,
        namespace=row.namespace,
        stage=row.stage,
        promotion=row.promotion,
        prospective=bool(row.prospective),
        freight=row.freight,
        allow=bool(row.allow),
        claimed=bool(row.claimed),
        evaluated_at=row.evaluated_at,
        last_at=row.last_at,
        repeat_count=row.repeat_count,
        input_hash=row.input_hash,
        duration_ms=row.duration_ms,
        caller=row.caller,
        result=json.loads(row.result),
        input=decode_input(row.encoding, row.body) if with_input else None,
    )


def encode_input(document: dict[str, Any]) -> tuple[str, bytes]:
    """How an input document is stored: compressed JSON (a few kB become under one)."""
    return "zlib", zlib.compress(_json.encode(document), 3)


def decode_input(encoding: str | None, body: bytes | None) -> dict[str, Any] | None:
    """A stored input document back (None when it was never stored)."""
    if body is None:
        return None
    raw = zlib.decompress(body) if encoding == "zlib" else bytes(body)
    return msgspec.json.decode(raw)


def verdict_of(row: tuple[object, ...]) -> PrecomputedVerdict:
    """A row of ``PRECOMPUTED_COLUMNS`` (in that order) as a ``PrecomputedVerdict``."""
    ns, promotion, stage, sv, fv, pv, bundle, input_hash, verdict, encoding, body, computed, expires = row
    return PrecomputedVerdict(
        ns, promotion, stage, (stage, sv, fv), pv, bundle, input_hash,  # type: ignore[arg-type]
        verdict.encode() if isinstance(verdict, str) else bytes(verdict),  # type: ignore[union-attr,arg-type]
        encoding, bytes(body), computed, expires,  # type: ignore[arg-type]
    )  # fmt: skip


PRECOMPUTED_COLUMNS = (
    "namespace", "promotion", "stage", "stage_version", "freight_version", "policy_version", "bundle",
    "input_hash", "verdict", "input_encoding", "input_body", "computed_ns", "expires_ns",
)  # fmt: skip
