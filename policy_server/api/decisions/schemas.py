"""Shapes of the decision API."""

from __future__ import annotations

from typing import Any

import msgspec

from policy_server.api.policies.schemas import ActionView, PolicyRefView, PromotionRef, ReasonView


class StageRef(msgspec.Struct):
    """A Stage by namespace (Kargo project) and name."""

    namespace: str
    name: str


class DecisionRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Ask about a recorded Promotion, or about a prospective one (a Stage and a Freight)."""

    promotion: PromotionRef | None = None
    """The Promotion, as `kubectl get promotion -n <namespace> <name>` would name it."""
    stage: StageRef | None = None
    """For a Promotion not created yet: its Stage (with `freight`). It is judged as appended to the queue now."""
    freight: str | None = None
    """For a prospective Promotion: the Freight name."""
    claim: bool = False
    """On allow, also claim the Stage: other Promotions of the Stage are denied (`stage_claimed`) until this
    one is observed Running or terminal, or the claim expires."""


class ActionOutcomeView(msgspec.Struct):
    """What became of one action: ``applied`` by the enforcer, ``already_done`` (aborted or finished before),
    ``dry_run`` (the enforcer is in dry-run mode), or ``failed`` with why."""

    promotion: PromotionRef
    action: str
    outcome: str
    detail: str
    at: str


class DecisionView(msgspec.Struct):
    """A decision: allow or deny, why, and what to do."""

    id: str
    """Sortable id (ULID) of the logged decision; a repeated identical answer keeps the same id."""
    allow: bool
    promotion: PromotionRef | None
    prospective: bool
    stage: StageRef | None
    freight: str | None
    evaluated_at: str
    reasons: list[ReasonView]
    """Enforced denials: `{policy, code, message}`; any makes `allow` false."""
    warnings: list[ReasonView]
    dry_run: list[ReasonView]
    """What dry-run policies would have denied."""
    actions: list[ActionView]
    """Abort actions for queued Promotions of the Stage, with the merge patch to apply."""
    dry_run_actions: list[ActionView]
    policies: list[PolicyRefView]
    """The policy revisions that were evaluated."""
    input_hash: str
    duration_ms: float
    claimed: bool
    repeat_count: int
    """How many times this same answer was given (polling folds into one logged decision)."""
    last_at: str | None = None
    caller: str | None = None
    input: dict[str, Any] | None = None
    action_outcomes: list[ActionOutcomeView] | None = None
    """What became of the actions (one decision by id; the enforcer applies them)."""
    retry_after: str | None = None
    """When a denial can lift by time alone (RFC 3339): the latest `retry_after` of the denying reasons that
    carry one (a freeze window's end). Other denials may still hold then."""


class DecisionPage(msgspec.Struct):
    """A page of decisions, newest first."""

    items: list[DecisionView]
    next_cursor: str | None
    """Pass as `cursor` to get the next (older) page; null on the last page."""


class DecisionTestView(msgspec.Struct):
    """A Rego test reproducing a logged decision for one policy: add ``file`` → ``source`` to the policy's
    ``tests`` (``PUT /v1/policies/{policy}``) and the decision becomes a regression test."""

    policy: str
    revision: int
    """The policy revision that decided; the test carries that revision's parameters."""
    mode: str
    file: str
    """A test file name the policy API accepts (``*_test.rego``)."""
    test: str
    """The test rule's name."""
    denies: list[str]
    """The deny codes the test expects (none: the policy allowed)."""
    aborts: list[str]
    """The Promotions the test expects the policy to abort."""
    source: str
    """The Rego test module: the decision's input and the expected outcome."""
    warnings: list[str] = msgspec.field(default_factory=list)
    """What could keep the test from running everywhere (a policy without the `denials(inp)` convention)."""
