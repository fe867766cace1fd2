"""Kargo's queue order and the rule that picks the run verifying the last Succeeded Promotion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from policy_server.kargo import PromotionFacts, RunFacts, newest_succeeded, queue_key, queue_order, verifying_run

T0 = datetime(2026, 8, 12, 10, 0, tzinfo=UTC)


def promotion(ulid: str, phase: str, finished: datetime | None = None, collection: str | None = "c1") -> PromotionFacts:
    name = f"prod.{ulid}.abcdef1"
    return PromotionFacts(
        namespace="ns",
        name=name,
        stage="prod",
        freight="f",
        phase=phase,
        queue_key=queue_key(name),
        created_at=T0,
        started_at=None,
        finished_at=finished,
        freight_collection=collection,
        abort_requested=False,
    )


def run(
    name: str, created: datetime, phase: str = "Running", collection: str = "c1", terminated: bool = False
) -> RunFacts:
    return RunFacts(
        namespace="ns",
        name=name,
        stage="prod",
        freight_collection=collection,
        promotion=None,
        phase=phase,
        terminated=terminated,
        created_at=created,
        started_at=None,
        completed_at=None,
    )


def test_running_sorts_first_then_oldest_first_and_terminal_ones_leave_the_queue():
    a = promotion("01kztrdxmgg3c76w16pjvk9zd1", "Pending")
    b = promotion("01kztrdxmgg3c76w16pjvk9zd2", "")
    c = promotion("01kztrdxmgg3c76w16pjvk9zd3", "Running")
    d = promotion("01kztrdxmgg3c76w16pjvk9zd0", "Succeeded")
    assert [p.name for p in queue_order([b, d, c, a])] == [c.name, a.name, b.name]


def test_newest_succeeded_goes_by_name_order_not_finish_time():
    old = promotion("01kztrdxmgg3c76w16pjvk9zd1", "Succeeded", T0 + timedelta(hours=5))
    new = promotion("01kztrdxmgg3c76w16pjvk9zd2", "Succeeded", T0)
    failed = promotion("01kztrdxmgg3c76w16pjvk9zd3", "Failed", T0)
    assert newest_succeeded([old, new, failed]) is new


def test_a_run_created_before_the_promotion_finished_does_not_verify_it():
    last = promotion("01kztrdxmgg3c76w16pjvk9zd1", "Succeeded", T0)
    reused = run("prod.old.c1", T0 - timedelta(days=2), phase="Successful")
    assert verifying_run(last, [reused]) is None
    fresh = run("prod.new.c1", T0, phase="Running")
    newer = run("prod.newer.c1", T0 + timedelta(minutes=5), phase="Pending")
    other_freight = run("prod.other.c2", T0 + timedelta(minutes=9), collection="c2")
    assert verifying_run(last, [reused, fresh, newer, other_freight]) is newer


def test_no_run_without_a_finished_succeeded_promotion():
    assert verifying_run(None, [run("r", T0)]) is None
    unfinished = promotion("01kztrdxmgg3c76w16pjvk9zd1", "Succeeded", None)
    assert verifying_run(unfinished, [run("r", T0)]) is None
