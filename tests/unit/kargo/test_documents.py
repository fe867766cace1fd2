"""Bodies: one object, Lists, watch events and NDJSON."""

from __future__ import annotations

import json

import pytest

from policy_server.errors import InvalidState
from policy_server.kargo import Action, Kind, parse_body
from tests.conftest import load


def _kinds(items):
    return [(i.action, i.obj.key.kind if i.obj else i.skipped_kind) for i in items]


def test_the_kubectl_list_yields_every_item_and_skips_other_kinds(fixtures_dir):
    items = parse_body((fixtures_dir / "list-kargo-demo.json").read_bytes(), "application/json")
    applied = [i for i in items if i.action is Action.APPLY]
    skipped = sorted(i.skipped_kind for i in items if i.action is Action.SKIP)
    assert len(applied) == 25
    assert skipped == ["AnalysisTemplate", "Warehouse"]


def test_the_watch_stream_is_read_line_by_line(fixtures_dir):
    items = parse_body((fixtures_dir / "watch-prod-verification-failed.jsonl").read_bytes(), "application/x-ndjson")
    assert len(items) == 22
    assert [i.line for i in items] == list(range(1, 23))
    assert items[-1].action is Action.DELETE and items[-1].obj.key.name.startswith("prod.01kzr7qg")


def test_a_typed_list_from_the_api_server_may_omit_item_kinds(fixtures_dir):
    promotion = load(fixtures_dir / "snapshot" / "promotions" / "prod.01kztrdxmgg3c76w16pjvk9zds.759376c.json")
    del promotion["kind"], promotion["apiVersion"]
    body = {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "PromotionList", "items": [promotion]}
    (item,) = parse_body(json.dumps(body).encode(), "application/json")
    assert item.obj.key.kind is Kind.PROMOTION


def test_bookmark_events_are_skipped_and_unknown_event_types_rejected():
    bookmark = {"type": "BOOKMARK", "object": {"kind": "Promotion", "metadata": {"resourceVersion": "5"}}}
    (item,) = parse_body(json.dumps(bookmark).encode(), None)
    assert item.action is Action.SKIP
    with pytest.raises(InvalidState) as caught:
        parse_body(json.dumps({"type": "UPDATED", "object": {}}).encode(), None)
    assert caught.value.errors[0].field == "type"


def test_every_bad_line_of_an_ndjson_body_is_reported_with_its_line(fixtures_dir):
    lines = (fixtures_dir / "watch-prod-verification-failed.jsonl").read_text().splitlines()
    broken = json.loads(lines[3])
    del broken["object"]["metadata"]["name"]
    lines[3] = json.dumps(broken)
    lines[7] = "{not json"
    with pytest.raises(InvalidState) as caught:
        parse_body("\n".join(lines).encode(), "application/x-ndjson; charset=utf-8")
    errors = [e.to_dict() for e in caught.value.errors]
    assert {"line": 4, "index": 3, "field": "object.metadata.name", "message": "is required"} in errors
    assert any(e.get("line") == 8 and "not valid JSON" in e["message"] for e in errors)
    assert "nothing was stored" in caught.value.detail


def test_a_list_item_error_names_the_item(fixtures_dir):
    body = load(fixtures_dir / "list-kargo-demo.json")
    body["items"][5]["metadata"]["namespace"] = 42
    with pytest.raises(InvalidState) as caught:
        parse_body(json.dumps(body).encode(), "application/json")
    (error,) = caught.value.errors
    assert error.index == 5 and error.field == "items[5].metadata.namespace"


@pytest.mark.parametrize("body", [b"[1, 2]", b'"a string"', b'{"metadata": {}}', b'{"kind": "Stage"}'])
def test_documents_that_are_not_kubernetes_objects_are_rejected(body):
    with pytest.raises(InvalidState):
        parse_body(body, "application/json")
