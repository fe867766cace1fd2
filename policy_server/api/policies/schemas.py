"""Shapes of the policy API."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Mode = Literal["enforce", "warn", "dryrun"]


Point = Literal["start", "admission"]


class Scope(msgspec.Struct):
    """Where a policy applies: glob patterns (``*``, ``prod-*``) for namespaces and Stage names, and the points
    it is asked at: ``start`` (may a queued Promotion start; the gate, the enforcer) and ``admission`` (may a
    Promotion be created; the admission webhook, where a new Promotion is always last in its queue)."""

    namespaces: list[str] = msgspec.field(default_factory=lambda: ["*"])
    stages: list[str] = msgspec.field(default_factory=lambda: ["*"])
    points: Annotated[list[Point], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=lambda: ["start"])


class PolicyWrite(msgspec.Struct):
    """A new revision of a policy: its Rego, its tests, and how it is enforced."""

    source: Annotated[str, msgspec.Meta(min_length=1)]
    """The policy module (Rego v1). It must declare its own package and a `deny` rule."""
    tests: dict[str, str] = msgspec.field(default_factory=dict)
    """Test modules by file name (`policy_test.rego`): every `test_*` rule must pass."""
    title: str = ""
    description: str = ""
    mode: Mode = "enforce"
    """`enforce`: denials deny. `warn`: denials are reported as warnings. `dryrun`: recorded only."""
    scope: Scope = msgspec.field(default_factory=Scope)
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    parameters_schema: dict[str, Any] | None = None
    """A JSON Schema (2020-12) the parameters must follow: checked at this and every later write."""
    """Given to the policy as `input.parameters`."""
    comment: str = ""
    """Why this revision was made (kept in the history)."""
    impact: ImpactGate | None = None
    """Require an impact analysis: the write is refused (409, with the report) when the revision would flip more
    past decisions than `max_flips`."""


class RevisionView(msgspec.Struct):
    """One immutable revision."""

    policy: str
    number: int
    created_at: str
    author: str
    comment: str
    action: str
    """create, update, rollback, delete, restore or builtin."""
    deleted: bool
    """This revision switched the policy off."""
    based_on: int | None
    content_hash: str
    title: str
    description: str
    mode: str
    scope: Scope
    parameters: dict[str, Any]
    source: str
    tests: dict[str, str]
    parameters_schema: dict[str, Any] | None = None


class PolicySummary(msgspec.Struct):
    """A policy in a listing."""

    id: str
    builtin: bool
    state: Literal["active", "deleted"]
    active_revision: int | None
    revisions: int
    title: str
    mode: str
    scope: Scope
    updated_at: str


class PolicyView(msgspec.Struct):
    """A policy and its active revision."""

    id: str
    builtin: bool
    state: Literal["active", "deleted"]
    builtin_overridden: bool
    """A built-in policy whose active revision is not the shipped version (restore brings it back)."""
    revisions: int
    active: RevisionView
    warnings: list[str] = msgspec.field(default_factory=list)
    """What a write changed that the author may not have meant (tests or metadata it dropped)."""


class PolicyPatch(msgspec.Struct, forbid_unknown_fields=True):
    """A JSON merge patch (RFC 7396) of a policy's settings: fields left out stay as they are; in
    `parameters`, a key set to `null` is removed. Source and tests change only with PUT."""

    title: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    mode: Mode | msgspec.UnsetType = msgspec.UNSET
    scope: ScopePatch | msgspec.UnsetType = msgspec.UNSET
    parameters: dict[str, Any] | None | msgspec.UnsetType = msgspec.UNSET
    """Merged into the current parameters (`null` as a whole removes them all)."""
    parameters_schema: dict[str, Any] | None | msgspec.UnsetType = msgspec.UNSET
    """Replaces the declared parameter schema (`null` removes it)."""
    comment: str = ""


class ScopePatch(msgspec.Struct, forbid_unknown_fields=True):
    """Scope fields to replace."""

    namespaces: list[str] | msgspec.UnsetType = msgspec.UNSET
    stages: list[str] | msgspec.UnsetType = msgspec.UNSET
    points: Annotated[list[Point], msgspec.Meta(min_length=1)] | msgspec.UnsetType = msgspec.UNSET


Revision = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


class RollbackRequest(msgspec.Struct):
    """Which revision to copy into a new one."""

    revision: Revision
    comment: str = ""


class ChangeComment(msgspec.Struct):
    """A comment for a delete or restore."""

    comment: str = ""


class TestResult(msgspec.Struct):
    """One `test_*` rule."""

    name: str
    file: str
    status: Literal["pass", "fail", "error"]
    message: str | None
    duration_ms: float


class OpaTestRun(msgspec.Struct):
    """The same tests as the real OPA runs them (`opa test`)."""

    passed: bool
    total: int
    failed: int
    results: list[TestResult]


class TestRun(msgspec.Struct):
    """The results of a policy's tests (on regopy; and on OPA when `POLICY_SERVER_OPA_BINARY` is set)."""

    policy: str
    revision: int
    passed: bool
    total: int
    failed: int
    results: list[TestResult]
    opa: OpaTestRun | None = None


class PolicyRefView(msgspec.Struct):
    """A policy revision that took part."""

    id: str
    revision: int
    mode: str


class ReasonView(msgspec.Struct):
    """A denial, warning or dry-run denial."""

    policy: str
    code: str
    message: str
    retry_after: str | None = None
    """When asking again can change this answer (RFC 3339): set by time-bound denials such as a freeze window."""


class PromotionRef(msgspec.Struct):
    """A Promotion by namespace and name."""

    namespace: str
    name: str


class ActionView(msgspec.Struct):
    """Something the caller should do: abort a queued Promotion with the given merge patch."""

    type: Literal["abort"]
    promotion: PromotionRef
    policy: str
    reason: str
    patch: dict[str, Any]
    """The JSON merge patch (`kubectl patch --type merge`) that asks Kargo to abort the Promotion."""


class Failure(msgspec.Struct):
    """Why a policy could not be evaluated (the decision then fails closed)."""

    code: str
    message: str


class PolicyResult(msgspec.Struct):
    """What one policy said."""

    policy: str
    deny: list[dict[str, Any]]
    warn: list[dict[str, Any]]
    abort: list[dict[str, Any]]
    failure: Failure | None


class EvaluateRequest(msgspec.Struct):
    """An input document to evaluate, against the active set, one active policy, or a draft."""

    input: dict[str, Any]
    """The decision input document (see `GET /v1/policies/input-schema`)."""
    policy: str | None = None
    """Evaluate only this active policy (ignoring its scope)."""
    draft: PolicyWrite | None = None
    """Evaluate this unsaved policy instead (its tests are not run)."""


class EvaluateResponse(msgspec.Struct):
    """The verdict of the policies on the input, and what each said. Nothing is recorded."""

    allow: bool
    reasons: list[ReasonView]
    warnings: list[ReasonView]
    dry_run: list[ReasonView]
    actions: list[ActionView]
    policies: list[PolicyRefView]
    results: list[PolicyResult]
    duration_ms: float


class ImpactGate(msgspec.Struct):
    """Require an impact analysis before this revision becomes active."""

    max_flips: Annotated[int, msgspec.Meta(ge=0)]
    """Refuse the write (409, with the report) when more past decisions than this would flip allow↔deny."""
    since: str = "7d"
    """The window replayed: a duration back from now (`7d`, `12h`, `30m`) or an RFC 3339 time."""
    max_decisions: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 20_000
    timeout_s: Annotated[float, msgspec.Meta(ge=1, le=300)] = 60.0


class ImpactRequest(msgspec.Struct):
    """What to replay: a draft (or an existing revision) in place of the policy's active revision."""

    draft: PolicyWrite | None = None
    """The draft: source, mode, scope, parameters (tests are not run here)."""
    revision: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Or an existing revision of this policy (e.g. one to roll back to)."""
    since: str = "7d"
    """Replay decisions from: a duration back from now (`7d`, `12h`, `30m`) or an RFC 3339 time."""
    until: str | None = None
    namespace: str | None = None
    stage: str | None = None
    max_decisions: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5_000
    """At most this many logged decisions (distinct inputs) are replayed, newest first."""
    timeout_s: Annotated[float, msgspec.Meta(ge=1, le=300)] = 60.0
    """The replay stops after this long and reports what it saw (`complete: false`, `stopped: timeout`)."""
    examples: Annotated[int, msgspec.Meta(ge=0, le=20)] = 3
    """Example decisions per kind of flip."""


class FlipCount(msgspec.Struct):
    decisions: int
    """Logged decisions (distinct inputs: a folded run of identical answers is one)."""
    answers: int
    """The answers they stand for (with their repeats)."""


class FlipSide(msgspec.Struct):
    allow: bool
    codes: list[str]
    """This policy's codes (a failure code when the draft failed to evaluate)."""


class FlipExample(msgspec.Struct):
    id: str
    link: str
    """The logged decision: `GET` it for its input and answer."""
    namespace: str
    stage: str | None
    promotion: str | None
    repeat_count: int
    before: FlipSide
    after: FlipSide


class StageFlips(msgspec.Struct):
    namespace: str
    stage: str | None
    allow_to_deny: FlipCount
    deny_to_allow: FlipCount
    code_changes: FlipCount


class ImpactView(msgspec.Struct):
    """What the draft would have decided differently on the decisions of the window."""

    policy: str
    mode: str
    since: str | None
    until: str | None
    complete: bool
    """False when a limit stopped the replay (`stopped`): the counts cover what was replayed."""
    stopped: str | None
    scanned: FlipCount
    without_input: int
    """Decisions in the window whose input was pruned: not replayed."""
    draft_failures: int
    """Decisions where the draft failed to evaluate (counted as denials: decisions fail closed)."""
    flips: int
    """allow→deny plus deny→allow decisions."""
    allow_to_deny: FlipCount
    deny_to_allow: FlipCount
    code_changes: FlipCount
    """The answer stays, but this policy's codes change."""
    stages: list[StageFlips]
    examples: dict[str, list[FlipExample]]
    elapsed_s: float
