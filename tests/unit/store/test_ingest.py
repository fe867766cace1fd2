"""The ingestion rules on their own (no database): newest resourceVersion wins, tombstones, replays, skips."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from policy_server.kargo import Action, Item, Kind, ObjectKey, parse_body
from policy_server.store._ingest import Recorded, apply_items

KEY = ObjectKey(Kind.PROMOTION, "kargo-demo", "prod.01kztrdxmgg3c76w16pjvk9zds.759376c")


def _event(kind: str, rv: int, phase: str = "Pending") -> Item:
    obj = {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Promotion",
        "metadata": {"name": KEY.name, "namespace": KEY.namespace, "resourceVersion": str(rv)},
        "spec": {"stage": "prod", "freight": "759376cafc8e421500b205c6eef4f1989c05217f"},
        "status": {"phase": phase},
    }
    return parse_body(json.dumps({"type": kind, "object": obj}).encode(), "application/json")[0]


def _fresh() -> dict[ObjectKey, Recorded]:
    return {KEY: Recorded(None, False, False)}


def test_newer_versions_apply_and_older_ones_are_stale():
    recorded = _fresh()
    result = apply_items([_event("ADDED", 10), _event("MODIFIED", 12, "Running"), _event("MODIFIED", 11)], recorded)
    assert (result.applied, result.stale) == (2, 1)
    assert recorded[KEY].resource_version == "12" and recorded[KEY].obj.columns["phase"] == "Running"


def test_versions_compare_as_numbers_not_text():
    recorded = {KEY: Recorded("9", False, True)}
    result = apply_items([_event("MODIFIED", 10)], recorded)
    assert result.applied == 1 and recorded[KEY].resource_version == "10"


def test_the_same_version_again_is_unchanged_and_writes_nothing():
    recorded = {KEY: Recorded("10", False, True)}
    result = apply_items([_event("MODIFIED", 10)], recorded)
    assert result.unchanged == 1 and not recorded[KEY].dirty


def test_a_deletion_is_a_tombstone_that_a_late_older_add_cannot_revive():
    recorded = {KEY: Recorded("10", False, True)}
    result = apply_items([_event("DELETED", 11), _event("ADDED", 10), _event("ADDED", 11)], recorded)
    assert (result.deleted, result.stale) == (1, 2)
    assert recorded[KEY].deleted and recorded[KEY].resource_version == "11"


def test_a_newer_add_after_a_deletion_brings_the_object_back():
    recorded = {KEY: Recorded("11", True, True)}
    result = apply_items([_event("ADDED", 12)], recorded)
    assert result.applied == 1 and not recorded[KEY].deleted


def test_kinds_policy_server_does_not_record_are_counted_by_kind():
    warehouse = {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": {"name": "w", "namespace": "n"},
    }
    items = parse_body(json.dumps(warehouse).encode(), "application/json")
    assert items[0].action is Action.SKIP
    result = apply_items(items, {})
    assert result.skipped == 1 and result.skipped_kinds == {"Warehouse": 1}


@given(st.lists(st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED"]), st.integers(1, 30)), max_size=25))
def test_any_order_of_events_ends_at_the_newest_version(events):
    """Whatever order a watch delivers events in, the recorded version is the newest one seen."""
    recorded = _fresh()
    result = apply_items([_event(kind, rv) for kind, rv in events], recorded)
    assert result.total == len(events)
    if events:
        newest = max(rv for _, rv in events)
        assert recorded[KEY].resource_version == str(newest)
        # Deleted exactly when a deletion carried the newest version (a same-version ADDED cannot undo it).
        assert recorded[KEY].deleted == any(kind == "DELETED" and rv == newest for kind, rv in events)
