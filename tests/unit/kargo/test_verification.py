"""What counts as L's verification: the run, Kargo's record of it, reuse, Kargo's abort, an Error without a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policy_server.kargo import (
    PromotionFacts,
    RunFacts,
    current_record,
    kargo_stage,
    queue_key,
    verification_of,
)

T = datetime(2026, 8, 12, 10, 30, tzinfo=UTC)
ENDED = ("Successful", "Failed", "Error", "Inconclusive")
L_NAME = "prod.01kztrb5rrszgtj1336jmp9ek5.0ccf689"
LAST = PromotionFacts(
    namespace="ns", name=L_NAME, stage="prod", freight="f", phase="Succeeded", queue_key=queue_key(L_NAME),
    created_at=T - timedelta(minutes=2), started_at=T - timedelta(minutes=2), finished_at=T,
    freight_collection="c1", abort_requested=False,
)  # fmt: skip


def run(name: str = "prod.run", *, created: datetime = T + timedelta(seconds=10), phase: str = "Running",
        terminated: bool = False) -> RunFacts:  # fmt: skip
    return RunFacts(
        namespace="ns", name=name, stage="prod", freight_collection="c1", promotion=L_NAME, phase=phase,
        terminated=terminated, created_at=created, started_at=created,
        completed_at=created + timedelta(minutes=3) if phase in ENDED else None,
    )  # fmt: skip


def stage(*records: dict, collection: str = "c1", annotations: dict | None = None, last_phase: str = "Succeeded"):
    return kargo_stage(
        {
            "metadata": {"annotations": annotations or {}},
            "status": {
                "freightHistory": [{"id": collection, "verificationHistory": list(records)}],
                "lastPromotion": {"name": L_NAME, "status": {"phase": last_phase}},
            },
        }
    )


def test_the_run_decides_when_kargo_has_no_terminal_record():
    rec = {"id": "r1", "phase": "Running", "analysisRun": {"name": "prod.run"}}
    v = verification_of(LAST, [run(phase="Running")], stage(rec))
    assert (v.name, v.effective_phase, v.source, v.awaiting_kargo) == ("prod.run", "Running", "analysis-run", False)


def test_kargos_abort_is_a_failure_although_the_run_says_successful():
    rec = {"id": "r1", "phase": "Failed", "message": "Verification aborted by user",
           "analysisRun": {"name": "prod.run"}, "finishTime": "2026-08-12T10:34:00Z"}  # fmt: skip
    v = verification_of(LAST, [run(phase="Successful", terminated=True)], stage(rec))
    assert (v.phase, v.effective_phase, v.aborted_by_user) == ("Successful", "Failed", True)
    assert v.completed_at == datetime(2026, 8, 12, 10, 34, tzinfo=UTC)


def test_a_stopped_run_waits_for_kargos_record():
    rec = {"id": "r1", "phase": "Running", "analysisRun": {"name": "prod.run"}}
    v = verification_of(LAST, [run(phase="Successful", terminated=True)], stage(rec))
    assert (v.effective_phase, v.awaiting_kargo, v.aborted_by_user) == ("Successful", True, False)


def test_a_stopped_run_without_any_record_counts_as_its_phase():
    v = verification_of(LAST, [run(phase="Successful", terminated=True)], stage())
    assert (v.effective_phase, v.awaiting_kargo) == ("Successful", False)


def test_an_error_without_a_run_is_kargos_record_alone():
    rec = {"id": "r9", "phase": "Error", "message": "Rollouts integration is disabled",
           "finishTime": "2026-08-12T10:31:00Z"}  # fmt: skip
    v = verification_of(LAST, [], stage(rec))
    assert (v.name, v.source, v.effective_phase, v.record_id) == (None, "kargo", "Error", "r9")


def test_a_record_of_another_freight_collection_is_not_evidence_for_l():
    rec = {"id": "r9", "phase": "Error", "message": "x"}
    assert verification_of(LAST, [], stage(rec, collection="c2")) is None
    assert current_record(stage(rec, collection="c2"), LAST, []) == (None, False)


def test_a_record_naming_a_run_created_before_l_finished_is_reused():
    old = "prod.01kznna8856jzw8s7mv3fwekcb.c3ff505"  # its ULID says 2026-08-10
    rec = {"id": "r2", "phase": "Successful", "analysisRun": {"name": old}}
    record, reused = current_record(stage(rec), LAST, [])
    assert record.run == old and reused is True
    assert verification_of(LAST, [], stage(rec)) is None
    # As recorded, when the run is known:
    record, reused = current_record(stage(rec), LAST, [run(old, created=T - timedelta(days=2), phase="Successful")])
    assert reused is True
    fresh = run("prod.fresh", created=T + timedelta(seconds=5))
    rec = {"id": "r3", "phase": "Running", "analysisRun": {"name": "prod.fresh"}}
    _, reused = current_record(stage(rec), LAST, [fresh])
    assert reused is False


def test_newest_record_first_and_the_stage_annotations():
    k = stage(
        {"id": "new", "phase": "Running"},
        {"id": "old", "phase": "Failed"},
        annotations={"policy-server.dev/accept-verification": "prod.run", "kargo.akuity.io/reverify": "old"},
        last_phase="Errored",
    )
    assert [r.id for r in k.records] == ["new", "old"]
    assert (k.accepted_verification, k.reverify_requested, k.last_promotion_phase) == ("prod.run", True, "Errored")


def test_odd_shapes_read_as_absent():
    k = kargo_stage({"metadata": None, "status": {"freightHistory": "x", "lastPromotion": [1]}})
    assert (k.freight_collection, k.records, k.last_promotion_phase, k.accepted_verification) == (None, (), None, None)
