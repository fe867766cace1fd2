"""Persistence: the only package that talks SQL."""

from policy_server.store._access import AccessStore, AuditEvent, Token
from policy_server.store._db import Database, translate_errors
from policy_server.store._decisions import (
    Claim,
    DecisionEntry,
    DecisionFilter,
    DecisionStore,
    LoggedDecision,
    new_decision_id,
)
from policy_server.store._migrate import current_revision, head_revision, upgrade
from policy_server.store._models import metadata
from policy_server.store._policies import Policy, PolicyStore, Revision, RevisionDraft
from policy_server.store._state import (
    ApplyResult,
    DecisionFacts,
    StageState,
    StageSummary,
    StateStore,
    StoredObject,
)

__all__ = [
    "AccessStore",
    "AuditEvent",
    "Token",
    "ApplyResult",
    "Claim",
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
    "StageState",
    "StageSummary",
    "StateStore",
    "StoredObject",
    "current_revision",
    "head_revision",
    "metadata",
    "new_decision_id",
    "translate_errors",
    "upgrade",
]
