"""Persistence: the only package that talks SQL.

``Database`` (``_db``) holds the engines and chooses the decision hot path once (``_hot``: one implementation per
database, the portable SQLAlchemy one as reference). The stores (``StateStore``, ``DecisionStore``,
``PolicyStore``, ``AccessStore``) hold no dialect branches. Value types are in ``_types``, row shapes in
``_rows``, the ingestion rules (pure) in ``_ingest``, state versions in ``_versions``, portable reads in
``_reads``, the schema in ``_models`` and Alembic's ``migrations/``.
"""

from policy_server.store._access import AccessStore, AuditEvent, Token
from policy_server.store._db import Database, translate_errors
from policy_server.store._decisions import DecisionStore, new_decision_id
from policy_server.store._hot import HotPath
from policy_server.store._migrate import current_revision, head_revision, upgrade
from policy_server.store._models import metadata
from policy_server.store._policies import Policy, PolicyStore, Revision, RevisionDraft
from policy_server.store._rows import decode_input, encode_input
from policy_server.store._state import StateStore
from policy_server.store._types import (
    ActionOutcome,
    ApplyResult,
    Claim,
    DecisionEntry,
    DecisionFacts,
    DecisionFilter,
    LoggedDecision,
    PrecomputedVerdict,
    Probe,
    StageState,
    StageSummary,
    StoredObject,
)
from policy_server.store._verdicts import VerdictStore
from policy_server.store._versions import FREIGHT_SCOPE

__all__ = [
    "FREIGHT_SCOPE",
    "AccessStore",
    "ActionOutcome",
    "AuditEvent",
    "Token",
    "ApplyResult",
    "Claim",
    "PrecomputedVerdict",
    "Probe",
    "DecisionEntry",
    "DecisionFilter",
    "DecisionStore",
    "LoggedDecision",
    "DecisionFacts",
    "Policy",
    "PolicyStore",
    "Revision",
    "RevisionDraft",
    "Database",
    "HotPath",
    "StageState",
    "StageSummary",
    "StateStore",
    "StoredObject",
    "VerdictStore",
    "decode_input",
    "encode_input",
    "current_revision",
    "head_revision",
    "metadata",
    "new_decision_id",
    "translate_errors",
    "upgrade",
]
