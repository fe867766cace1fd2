"""Tables of the store: recorded Kargo objects, each with the columns decisions query."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, LargeBinary, MetaData, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Kubernetes names are DNS subdomains: at most 253 characters.
_NAME = String(253)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite keeps no zone, so it is stored naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        if getattr(dialect, "name", "") == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same everywhere."""

    metadata = MetaData(naming_convention=_NAMING)


class _Recorded:
    """Columns every recorded object has."""

    namespace: Mapped[str] = mapped_column(_NAME, primary_key=True)
    name: Mapped[str] = mapped_column(_NAME, primary_key=True)
    uid: Mapped[str | None] = mapped_column(String(64))
    resource_version: Mapped[str | None] = mapped_column(String(64))
    """``metadata.resourceVersion`` as served (opaque text)."""
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    """A tombstone: the object was deleted at ``resource_version``; an older ADDED cannot revive it."""
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """``metadata.creationTimestamp``."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """When this version was recorded."""
    object: Mapped[str] = mapped_column(Text)
    """The whole object as served, as JSON text."""


class StageRow(_Recorded, Base):
    """A Kargo Stage."""

    __tablename__ = "stages"

    has_verification: Mapped[bool] = mapped_column(Boolean, default=False)
    health_status: Mapped[str | None] = mapped_column(String(32))
    current_promotion: Mapped[str | None] = mapped_column(_NAME)
    last_promotion: Mapped[str | None] = mapped_column(_NAME)
    current_freight_collection: Mapped[str | None] = mapped_column(String(64))


class PromotionRow(_Recorded, Base):
    """A Kargo Promotion; ``queue_key`` is the ULID of its name."""

    __tablename__ = "promotions"
    __table_args__ = (
        Index("ix_promotions_queue", "namespace", "stage", "terminal", "queue_key"),
        Index("ix_promotions_phase", "namespace", "stage", "phase", "queue_key"),
    )

    stage: Mapped[str] = mapped_column(_NAME)
    freight: Mapped[str | None] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(32), default="")
    terminal: Mapped[bool] = mapped_column(Boolean, default=False)
    queue_key: Mapped[str] = mapped_column(String(254))
    freight_collection: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    abort_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class FreightRow(_Recorded, Base):
    """A Kargo Freight."""

    __tablename__ = "freight"

    alias: Mapped[str | None] = mapped_column(_NAME)
    origin_kind: Mapped[str | None] = mapped_column(String(64))
    origin_name: Mapped[str | None] = mapped_column(_NAME)


class AnalysisRunRow(_Recorded, Base):
    """An Argo Rollouts AnalysisRun, linked to (Stage, FreightCollection) by Kargo's labels."""

    __tablename__ = "analysis_runs"
    __table_args__ = (Index("ix_analysis_runs_verification", "namespace", "stage", "freight_collection", "created_at"),)

    stage: Mapped[str | None] = mapped_column(_NAME)
    freight_collection: Mapped[str | None] = mapped_column(String(64))
    promotion: Mapped[str | None] = mapped_column(_NAME)
    """The ``kargo.akuity.io/promotion`` annotation: a hint only, it can name the wrong Promotion."""
    phase: Mapped[str] = mapped_column(String(32), default="")
    terminated: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StateVersionRow(Base):
    """A counter bumped by every write that changes what a decision about one Stage reads.

    ``scope`` is ``stage/<name>`` (the Stage, its Promotions and its verification runs) or ``freight`` (the
    namespace's Freight). A decision's input is reused only while both counters it was read at are unchanged.
    """

    __tablename__ = "state_versions"

    namespace: Mapped[str] = mapped_column(_NAME, primary_key=True)
    scope: Mapped[str] = mapped_column(String(260), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class PolicyRow(Base):
    """A policy: built in or written through the API; its active revision decides."""

    __tablename__ = "policies"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    builtin_hash: Mapped[str | None] = mapped_column(String(64))
    """Content hash of the built-in version last loaded from ``policies/``."""
    active_revision: Mapped[int | None] = mapped_column(BigInteger)
    """The revision in force; a deleting revision (``deleted``) means the policy is off."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyRevisionRow(Base):
    """One immutable revision of a policy: source, tests, enforcement, scope and parameters."""

    __tablename__ = "policy_revisions"

    policy_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(253))
    comment: Mapped[str] = mapped_column(Text, default="")
    action: Mapped[str] = mapped_column(String(16))
    """create, update, rollback, delete, restore or builtin."""
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(Text)
    tests: Mapped[str] = mapped_column(Text)
    """Test modules as a JSON object: file name → source."""
    title: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(Text)
    """JSON ``{"namespaces": [globs], "stages": [globs]}``."""
    parameters: Mapped[str] = mapped_column(Text)
    """JSON object given to the policy as ``input.parameters``."""
    parameters_schema: Mapped[str | None] = mapped_column(Text, nullable=True)
    """A JSON Schema the parameters must follow (JSON), when the revision declares one."""
    content_hash: Mapped[str] = mapped_column(String(64))
    based_on: Mapped[int | None] = mapped_column(BigInteger)
    """For a rollback: the revision it copies."""


class PolicySetRow(Base):
    """One row: a counter bumped whenever any policy's active revision changes (replicas poll it)."""

    __tablename__ = "policy_set"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DecisionRow(Base):
    """A logged decision; consecutive identical answers for one question are folded into one row."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_stage", "namespace", "stage", "id"),
        Index("ix_decisions_promotion", "namespace", "promotion", "id"),
        Index("ix_decisions_last_at", "last_at"),
        Index("ix_decisions_namespace", "namespace", "id"),
        Index("ix_decisions_allow", "allow", "id"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    """ULID: sorts by creation time."""
    namespace: Mapped[str] = mapped_column(_NAME)
    stage: Mapped[str | None] = mapped_column(_NAME)
    promotion: Mapped[str | None] = mapped_column(_NAME)
    """The Promotion asked about; null for a prospective one."""
    prospective: Mapped[bool] = mapped_column(Boolean, default=False)
    freight: Mapped[str | None] = mapped_column(String(64))
    allow: Mapped[bool] = mapped_column(Boolean)
    claimed: Mapped[bool] = mapped_column(Boolean, default=False)
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """First time this answer was given."""
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """Last time the same answer was given again (polling)."""
    repeat_count: Mapped[int] = mapped_column(BigInteger, default=1)
    fold_key: Mapped[str] = mapped_column(String(64))
    """Hash of the question, the state (input without the time), the policy revisions and the answer."""
    input_hash: Mapped[str] = mapped_column(String(64))
    duration_ms: Mapped[float] = mapped_column(Float)
    caller: Mapped[str] = mapped_column(String(253), default="")
    result: Mapped[str] = mapped_column(Text)
    """JSON: reasons, warnings, dry_run, actions, policies."""


class DecisionInputRow(Base):
    """The input document a logged decision evaluated, kept apart so that browsing the log never reads it."""

    __tablename__ = "decision_inputs"

    decision_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    encoding: Mapped[str] = mapped_column(String(8))
    """``zlib`` (compressed JSON) or ``json``."""
    body: Mapped[bytes] = mapped_column(LargeBinary)


class DecisionReasonRow(Base):
    """A reason of a logged decision, for filtering by policy and code."""

    __tablename__ = "decision_reasons"
    __table_args__ = (
        Index("ix_decision_reasons_code", "code", "decision_id"),
        Index("ix_decision_reasons_policy", "policy", "decision_id"),
    )

    decision_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    """deny, warn or dryrun."""
    policy: Mapped[str] = mapped_column(String(63))
    code: Mapped[str] = mapped_column(String(128))


class StageClaimRow(Base):
    """A start claim: Promotion P is about to start on the Stage; other Promotions are held meanwhile."""

    __tablename__ = "stage_claims"

    namespace: Mapped[str] = mapped_column(_NAME, primary_key=True)
    stage: Mapped[str] = mapped_column(_NAME, primary_key=True)
    promotion: Mapped[str] = mapped_column(_NAME)
    decision_id: Mapped[str] = mapped_column(String(26))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ActionOutcomeRow(Base):
    """What became of an action a decision asked for (the enforcer applied it, found it done, or failed)."""

    __tablename__ = "action_outcomes"
    __table_args__ = (Index("ix_action_outcomes_decision", "decision_id", "id"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    decision_id: Mapped[str] = mapped_column(String(26))
    namespace: Mapped[str] = mapped_column(_NAME)
    promotion: Mapped[str] = mapped_column(_NAME)
    action: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class TokenRow(Base):
    """An API token: only a hash of its secret is kept."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    namespaces: Mapped[str | None] = mapped_column(Text)
    """JSON list of namespaces the token is limited to; null for all."""
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(63))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEventRow(Base):
    """Who changed what: policies, enforcement, scope, tokens."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_action", "action", "id"), Index("ix_audit_events_actor", "actor", "id"))

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(253))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, default="{}")


metadata = Base.metadata


class PrecomputedVerdictRow(Base):
    """The policies' verdict on a queued Promotion, computed when its Stage's state changed (before anyone asked).

    It answers the next question about the Promotion while the state versions, the policy set and (for a
    time-dependent set) ``expires_ns`` still hold; otherwise it is ignored and the question is evaluated.
    """

    __tablename__ = "precomputed_verdicts"

    namespace: Mapped[str] = mapped_column(_NAME, primary_key=True)
    promotion: Mapped[str] = mapped_column(_NAME, primary_key=True)
    stage: Mapped[str] = mapped_column(_NAME)
    stage_version: Mapped[int] = mapped_column(BigInteger)
    freight_version: Mapped[int] = mapped_column(BigInteger)
    policy_version: Mapped[int] = mapped_column(BigInteger)
    bundle: Mapped[str] = mapped_column(String(64))
    input_hash: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(Text)
    """The verdict (JSON)."""
    input_encoding: Mapped[str] = mapped_column(String(16))
    input_body: Mapped[bytes] = mapped_column(LargeBinary)
    """The input document evaluated, stored as the decision log stores inputs."""
    computed_ns: Mapped[int] = mapped_column(BigInteger)
    expires_ns: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """For a time-dependent policy set: when the verdict stops holding by time alone (else null)."""
