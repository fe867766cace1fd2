"""Parsing Kargo objects as Kubernetes serves them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policy_server.kargo import Kind, ObjectError, is_newer, name_ulid, queue_key, time_ns, ulid_millis
from policy_server.kargo._objects import classify, parse_object
from tests.conftest import load


def test_every_snapshot_object_parses_with_its_indexed_columns(fixtures_dir):
    parsed = {}
    for path in sorted((fixtures_dir / "snapshot").rglob("*.json")):
        raw = load(path)
        kind = classify(raw)
        if kind is not None:
            parsed[raw["metadata"]["name"]] = parse_object(raw, kind)
    assert {o.key.kind for o in parsed.values()} == set(Kind)

    prod = parsed["prod"]
    assert prod.columns["has_verification"] is True
    assert prod.columns["health_status"] == "Healthy"
    assert prod.columns["last_promotion"] == "prod.01kztrb5rrszgtj1336jmp9ek5.0ccf689"
    assert prod.columns["current_promotion"] is None
    assert prod.columns["current_freight_collection"].startswith("1265247")
    assert parsed["test"].columns["has_verification"] is False

    p3 = parsed["prod.01kzr7qggsbeqy9zc25rgqrtps.10a9340"]
    assert p3.columns["phase"] == "Aborted" and p3.columns["terminal"] is True
    assert p3.columns["abort_requested"] is True
    assert p3.columns["started_at"] is None and p3.columns["freight_collection"] is None

    p6 = parsed["prod.01kztrdxmgg3c76w16pjvk9zds.759376c"]
    assert p6.columns["stage"] == "prod" and p6.columns["phase"] == "Pending"
    assert p6.columns["queue_key"] == "01KZTRDXMGG3C76W16PJVK9ZDS"
    assert p6.resource_version == "182419" and p6.rv_number == 182419

    running = parsed["prod.01kztrcpjk2gpy8b8wxaq1g00v.1265247"]
    assert running.key.kind is Kind.ANALYSIS_RUN
    assert running.columns["stage"] == "prod"
    assert running.columns["freight_collection"].startswith("1265247")
    assert running.columns["phase"] == "Running" and running.columns["completed_at"] is None


def test_objects_of_other_kinds_or_groups_are_not_recorded(fixtures_dir):
    assert classify(load(fixtures_dir / "snapshot" / "warehouse-kargo-demo.json")) is None
    assert classify(load(fixtures_dir / "snapshot" / "analysistemplate-error-rate.json")) is None
    assert classify({"apiVersion": "example.com/v1", "kind": "Stage"}) is None
    assert classify({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun"}) is Kind.ANALYSIS_RUN


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o["metadata"].pop("name"), "metadata.name"),
        (lambda o: o["metadata"].pop("namespace"), "metadata.namespace"),
        (lambda o: o["metadata"].update(namespace=""), "metadata.namespace"),
        (lambda o: o["metadata"].update(resourceVersion=182419), "metadata.resourceVersion"),
        (lambda o: o["metadata"].update(creationTimestamp="yesterday"), "metadata.creationTimestamp"),
        (
            lambda o: o["metadata"]["labels"].update({"kargo.akuity.io/stage": 3}),
            "metadata.labels[kargo.akuity.io/stage]",
        ),
        (lambda o: o["spec"].pop("stage"), "spec.stage"),
        (lambda o: o["spec"].update(stage=["prod"]), "spec.stage"),
        (lambda o: o.update(status={"phase": 7}), "status.phase"),
        (lambda o: o.update(status="Pending"), "status"),
        (lambda o: o.pop("spec"), "spec"),
    ],
)
def test_a_malformed_promotion_names_the_bad_field(fixtures_dir, mutate, field):
    raw = load(fixtures_dir / "snapshot" / "promotions" / "prod.01kztrdxmgg3c76w16pjvk9zds.759376c.json")
    mutate(raw)
    with pytest.raises(ObjectError) as caught:
        parse_object(raw, Kind.PROMOTION)
    assert caught.value.field == field


def test_a_malformed_analysis_run_names_the_bad_field(fixtures_dir):
    raw = load(fixtures_dir / "snapshot" / "analysisruns" / "prod.01kztrcpjk2gpy8b8wxaq1g00v.1265247.json")
    raw["spec"]["terminate"] = "yes"
    with pytest.raises(ObjectError) as caught:
        parse_object(raw, Kind.ANALYSIS_RUN)
    assert caught.value.field == "spec.terminate"


def test_a_shortened_stage_label_is_resolved_through_the_annotation(fixtures_dir):
    raw = load(fixtures_dir / "snapshot" / "analysisruns" / "prod.01kztrcpjk2gpy8b8wxaq1g00v.1265247.json")
    long_name = "a-very-long-stage-name-" + "x" * 60
    raw["metadata"]["labels"]["kargo.akuity.io/stage"] = long_name[:54] + "-1a2b3c4d"
    raw["metadata"].setdefault("annotations", {})["kargo.akuity.io/stage"] = long_name
    assert parse_object(raw, Kind.ANALYSIS_RUN).columns["stage"] == long_name


@pytest.mark.parametrize(
    ("incoming", "stored", "expected"),
    [
        ("10", "9", True),  # numeric, not lexical: "10" < "9" as text
        ("9", "10", False),
        ("182419", "182419", None),
        ("abc", "abd", True),  # opaque versions cannot be ordered: the incoming one wins
        (None, None, None),
    ],
)
def test_resource_versions_compare_numerically_when_both_are_integers(incoming, stored, expected):
    assert is_newer(incoming, stored) is expected


def test_queue_key_is_the_ulid_of_the_name_and_sorts_like_creation():
    older = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"
    newer = "prod.01kztrf9sk2ppygyjnh3f2mnnz.10a9340"
    assert queue_key(older) < queue_key(newer)
    assert name_ulid("uat.target-a.01kztrf9sk2ppygyjnh3f2mnnz.10a9340") == "01KZTRF9SK2PPYGYJNH3F2MNNZ"
    assert name_ulid("my.dotted.stage.01kztrf9sk2ppygyjnh3f2mnnz.10a9340") == "01KZTRF9SK2PPYGYJNH3F2MNNZ"
    assert name_ulid("hand-made-promotion") is None
    assert queue_key("hand-made") > queue_key(newer)  # names without a ULID sort last


def test_ulid_time_matches_the_creation_timestamp(fixtures_dir):
    raw = load(fixtures_dir / "snapshot" / "promotions" / "prod.01kztrdxmgg3c76w16pjvk9zds.759376c.json")
    created = datetime.fromisoformat(raw["metadata"]["creationTimestamp"])
    millis = ulid_millis(name_ulid(raw["metadata"]["name"]))
    assert abs(millis / 1000 - created.timestamp()) < 1


def test_time_ns_is_exact():
    assert time_ns(datetime(2026, 8, 12, 10, 33, 52, 123456, tzinfo=UTC)) == 1786530832123456000


def test_the_stage_of_a_kargo_promotion_name():
    from policy_server.kargo import stage_of_name

    assert stage_of_name("prod.01kztrdxmgg3c76w16pjvk9zds.759376c") == "prod"
    assert stage_of_name("my-stage.01kztrdxmgg3c76w16pjvk9zds.759376c") == "my-stage"
    assert stage_of_name("hand-made-promotion") is None and stage_of_name(None) is None
    assert stage_of_name("prod.notaulid.759376c") is None
