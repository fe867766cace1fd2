"""The ingestion rules, as a pure function over what is recorded: no SQL, so they are tested on their own.

Items apply in the order they came. An update whose ``resourceVersion`` is older than the recorded one (compared
as numbers) never overwrites it; the same version again is a replay (unchanged), or stale when that version was
deleted; a deletion is remembered (a tombstone) so that a late, older ADDED cannot revive the object.
"""

from __future__ import annotations

from dataclasses import dataclass

from policy_server.kargo import Action, Item, KargoObject, ObjectKey, is_newer
from policy_server.store._types import ApplyResult


@dataclass(slots=True)
class Recorded:
    """What the store holds for one object while a batch applies (and what the batch changed)."""

    resource_version: str | None
    deleted: bool
    exists: bool
    """A row exists (possibly a tombstone)."""
    obj: KargoObject | None = None
    dirty: bool = False
    """The batch changed it: write ``obj`` (deleted or not)."""
    old_stage: str | None = None
    """The Stage the recorded row belonged to (Promotions, AnalysisRuns)."""


def apply_items(items: list[Item] | tuple[Item, ...], recorded: dict[ObjectKey, Recorded]) -> ApplyResult:
    """Apply ``items`` in order to ``recorded`` (every key of the items must be in it); count each outcome."""
    result = ApplyResult()
    for item in items:
        step(item, recorded, result)
    return result


def step(item: Item, recorded: dict[ObjectKey, Recorded], result: ApplyResult) -> None:
    """One item: applied, unchanged, stale, deleted or skipped."""
    if item.action is Action.SKIP or item.obj is None:
        result.count(item.skipped_kind or "unknown", "skipped")
        if item.skipped_kind:
            result.skipped_kinds[item.skipped_kind] = result.skipped_kinds.get(item.skipped_kind, 0) + 1
        return
    obj = item.obj
    kind = obj.key.kind.value
    state = recorded[obj.key]
    known = state.exists or state.dirty
    newer = is_newer(obj.resource_version, state.resource_version) if known else True
    if item.action is Action.APPLY:
        if newer is None:
            # The same version again: a replay, or (when deleted) the version that was deleted.
            result.count(kind, "stale" if state.deleted else "unchanged")
            return
        if newer is False:
            result.count(kind, "stale")
            return
        state.deleted = False
        result.count(kind, "applied")
    else:
        if newer is False or (newer is None and state.deleted):
            result.count(kind, "unchanged" if state.deleted else "stale")
            return
        state.deleted = True
        result.count(kind, "deleted")
    state.resource_version = obj.resource_version
    state.obj = obj
    state.dirty = True
