"""Builds the built-in policies' examples from the shared Kargo fixtures (snapshot and watch stream).

Run ``python -m tests.support.policy_examples`` to rewrite ``policies/*/examples/``; a test checks that the
committed files are what this produces. Expected outcomes are written here by hand from the semantics in
``policies/KARGO.md``, never computed by the policies they check.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policy_server.kargo import parse_body
from policy_server.service.inputs import build_input
from policy_server.store import Database, StateStore, upgrade
from tests.conftest import ROOT, kargo_fixtures_dir

P3 = "prod.01kzr7qggsbeqy9zc25rgqrtps.10a9340"
P5 = "prod.01kztrb5rrszgtj1336jmp9ek5.0ccf689"
P6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"
P7 = "prod.01kztrf9sk2ppygyjnh3f2mnnz.10a9340"
P8 = "prod.01kztrxfkyqgkv5qwxbvvxryff.10a9340"
U4 = "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"
AR_E = "prod.01kztrcpjk2gpy8b8wxaq1g00v.1265247"
F3 = "0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass
class Scenario:
    """One example: a state (objects to post), a question, a time, and the outcome KARGO.md prescribes."""

    policy: str
    name: str
    description: str
    now: str
    bodies: Callable[[Path], list[bytes]]
    promotion: str | None = None
    stage: str | None = None
    freight: str | None = None
    expect: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] | None = None
    """The policy's parameters for this example (its defaults when None)."""


def snapshot(fixtures: Path) -> list[bytes]:
    return [(fixtures / "list-kargo-demo.json").read_bytes()]


def stream(*indices: int | slice) -> Callable[[Path], list[bytes]]:
    """The snapshot, then the chosen watch events (by position in the stream) as NDJSON."""

    def bodies(fixtures: Path) -> list[bytes]:
        lines = (fixtures / "watch-prod-verification-failed.jsonl").read_text().splitlines()
        chosen: list[str] = []
        for index in indices:
            chosen += lines[index] if isinstance(index, slice) else [lines[index]]
        return snapshot(fixtures) + [("\n".join(chosen) + "\n").encode()]

    return bodies


def with_run(
    mutate: Callable[[dict], None], stage: Callable[[dict], None] | None = None
) -> Callable[[Path], list[bytes]]:
    """The snapshot with AR-e changed, and optionally Stage prod (newer resourceVersions, as a watch delivers)."""

    def bodies(fixtures: Path) -> list[bytes]:
        run = json.loads((fixtures / "snapshot" / "analysisruns" / f"{AR_E}.json").read_text())
        changed = copy.deepcopy(run)
        mutate(changed)
        changed["metadata"]["resourceVersion"] = str(int(run["metadata"]["resourceVersion"]) + 1000)
        out = snapshot(fixtures) + [json.dumps(changed).encode()]
        if stage is not None:
            out.append(json.dumps(_changed_prod(fixtures, stage)).encode())
        return out

    return bodies


def without_run(stage: Callable[[dict], None]) -> Callable[[Path], list[bytes]]:
    """The snapshot with AR-e deleted and Stage prod changed."""

    def bodies(fixtures: Path) -> list[bytes]:
        run = json.loads((fixtures / "snapshot" / "analysisruns" / f"{AR_E}.json").read_text())
        run["metadata"]["resourceVersion"] = str(int(run["metadata"]["resourceVersion"]) + 1000)
        deleted = json.dumps({"type": "DELETED", "object": run}) + "\n"
        return snapshot(fixtures) + [deleted.encode(), json.dumps(_changed_prod(fixtures, stage)).encode()]

    return bodies


def _changed_prod(fixtures: Path, mutate: Callable[[dict], None]) -> dict:
    prod = json.loads((fixtures / "snapshot" / "stages" / "prod.json").read_text())
    changed = copy.deepcopy(prod)
    mutate(changed)
    changed["metadata"]["resourceVersion"] = str(int(prod["metadata"]["resourceVersion"]) + 1000)
    return changed


def _record(stage: dict, **fields: Any) -> None:
    """Kargo's newest verification record of prod's current Freight, changed."""
    record = stage["status"]["freightHistory"][0]["verificationHistory"][0]
    record.update(fields)
    if record.get("analysisRun") is None:
        record.pop("analysisRun", None)


def with_prod_health(status: str) -> Callable[[Path], list[bytes]]:
    """The whole stream, then Stage prod with another health status."""

    def bodies(fixtures: Path) -> list[bytes]:
        lines = (fixtures / "watch-prod-verification-failed.jsonl").read_text().splitlines()
        objects = [json.loads(line)["object"] for line in lines]
        last_prod = [o for o in objects if o["kind"] == "Stage" and o["metadata"]["name"] == "prod"][-1]
        changed = copy.deepcopy(last_prod)
        changed["status"]["health"]["status"] = status
        changed["metadata"]["resourceVersion"] = str(int(last_prod["metadata"]["resourceVersion"]) + 1000)
        return stream(slice(0, None))(fixtures) + [json.dumps(changed).encode()]

    return bodies


def _inconclusive(run: dict) -> None:
    run["status"].update(
        phase="Inconclusive", completedAt="2026-08-12T10:33:52Z", message="Metric assessed Inconclusive"
    )


def _aborted_in_kargo(stage: dict) -> None:
    _record(stage, phase="Failed", message="Verification aborted by user", finishTime="2026-08-12T10:33:40Z")


def _recorded_successful(stage: dict) -> None:
    _record(stage, phase="Successful", finishTime="2026-08-12T10:33:40Z")


def _error_without_run(stage: dict) -> None:
    _record(
        stage,
        id="5d0c1f7e-0a8b-4c43-9a37-2f3b0c9e7d11",
        phase="Error",
        message="Rollouts integration is disabled on this controller: cannot start verification",
        analysisRun=None,
        finishTime="2026-08-12T10:33:52Z",
    )


def _accept_ar_e(stage: dict) -> None:
    stage["metadata"].setdefault("annotations", {})["policy-server.dev/accept-verification"] = AR_E


def _terminated(run: dict) -> None:
    run["spec"]["terminate"] = True
    run["status"].update(phase="Successful", completedAt="2026-08-12T10:33:40Z", message="Run Terminated")


SCENARIOS = [
    # admission
    Scenario("admission", "allowed_queue_head_p6", "After the snapshot P6 heads prod's queue and nothing runs.",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P6),
    Scenario("admission", "denied_not_queue_head_p7", "P7 is queued behind P6 (FIFO by ULID).",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P7, expect={"codes": ["not_queue_head"]}),
    Scenario("admission", "denied_terminal_p5", "P5 already Succeeded.",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P5, expect={"codes": ["promotion_terminal"]}),
    Scenario("admission", "denied_another_running_prospective_uat",
             "A new Promotion for uat while U4 is Running there.", "2026-08-12T10:33:30+00:00", snapshot,
             stage="uat", freight=F3, expect={"codes": ["another_running"]}),
    Scenario("admission", "denied_unknown_promotion", "A Promotion that was never recorded.",
             "2026-08-12T10:33:30+00:00", snapshot, promotion="prod.01kzzzzzzzzzzzzzzzzzzzzzzz.0ccf689",
             expect={"codes": ["promotion_unknown"]}),
    Scenario("admission", "allowed_running_promotion_asks_itself_u4",
             "U4 is Running and asks about itself (Kargo's http step runs inside the Promotion).",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=U4),
    # block-while-verifying
    Scenario("block-while-verifying", "denied_verification_running_p6",
             "After the snapshot AR-e, which verifies P5, is Running: P6 waits.", "2026-08-12T10:33:30+00:00",
             snapshot, promotion=P6, expect={"codes": ["verification_in_progress"]}),
    Scenario("block-while-verifying", "denied_reused_run_holds_until_reverify_p8",
             "After the stream P8 Succeeded and Kargo recorded AR-a, created two days before P8 finished, as its "
             "verification (Kargo #6372): no evidence for P8's deployment, so a new prod Promotion waits for "
             "a reverify (prod is Healthy, nothing is current: Kargo would start one).",
             "2026-08-12T10:45:00+00:00", stream(slice(0, None)), stage="prod", freight=F3,
             expect={"codes": ["verification_reused"]}),
    Scenario("block-while-verifying", "denied_stopped_run_awaiting_kargo_p6",
             "AR-e was stopped (spec.terminate, Successful 'Run Terminated') and Kargo has not recorded the "
             "result yet: only its record says whether a user aborted it, so P6 waits.",
             "2026-08-12T10:33:45+00:00", with_run(_terminated), promotion=P6,
             expect={"codes": ["verification_in_progress"]}),
    Scenario("block-while-verifying", "allowed_verification_failed_p8",
             "AR-e failed and P6/P7 were aborted: P8, created after the failure, is not held by this policy.",
             "2026-08-12T10:40:30+00:00", stream(slice(0, 14)), promotion=P8),
    Scenario("block-while-verifying", "allowed_unhealthy_stage_without_run",
             "No run for P8 yet, but prod is Unhealthy: Kargo never verifies an Unhealthy Stage, so no hold.",
             "2026-08-12T10:45:00+00:00", with_prod_health("Unhealthy"), stage="prod", freight=F3),
    Scenario("block-while-verifying", "allowed_stage_without_verification_uat",
             "uat has no spec.verification.", "2026-08-12T10:33:30+00:00", snapshot, stage="uat", freight=F3),
    # cancel-queue-on-failure
    Scenario("cancel-queue-on-failure", "denied_verification_failed_p6",
             "AR-e failed at 10:33:52: P6 and P7, queued before, are denied and aborted.",
             "2026-08-12T10:34:00+00:00", stream(slice(0, 7)), promotion=P6,
             expect={"codes": ["verification_failed"], "aborts": [P6, P7]}),
    Scenario("cancel-queue-on-failure", "allowed_p8_created_after_the_failure",
             "P8 was created after AR-e failed: judged normally, while P6 and P7 are still to be aborted.",
             "2026-08-12T10:40:30+00:00", stream(slice(0, 7), 12, 13), promotion=P8,
             expect={"codes": [], "aborts": [P6, P7]}),
    Scenario("cancel-queue-on-failure", "denied_verification_aborted_by_user_p7",
             "A user aborted the verification in Kargo: Kargo stopped AR-e (it reports Successful 'Run "
             "Terminated') and recorded Failed 'Verification aborted by user'. Counts as failed.",
             "2026-08-12T10:34:00+00:00", with_run(_terminated, _aborted_in_kargo), promotion=P7,
             expect={"codes": ["verification_failed"], "aborts": [P6, P7]}),
    Scenario("cancel-queue-on-failure", "allowed_run_stopped_otherwise_p7",
             "Someone else set spec.terminate on AR-e: it ends Successful and Kargo records Successful. Nothing "
             "failed, nothing to abort.",
             "2026-08-12T10:34:00+00:00", with_run(_terminated, _recorded_successful), promotion=P7,
             expect={"codes": [], "aborts": []}),
    Scenario("cancel-queue-on-failure", "denied_error_recorded_without_run_p6",
             "Kargo recorded Error without starting any AnalysisRun (Rollouts integration disabled): a failed "
             "verification, so P6 and P7 are denied and aborted.",
             "2026-08-12T10:34:00+00:00", without_run(_error_without_run), promotion=P6,
             expect={"codes": ["verification_failed"], "aborts": [P6, P7]}),
    Scenario("cancel-queue-on-failure", "allowed_inconclusive_accepted_p6",
             "AR-e ended Inconclusive and a person annotated prod with policy-server.dev/accept-verification=AR-e: "
             "the queue moves on, and the decision says why.",
             "2026-08-12T10:34:00+00:00", with_run(_inconclusive, _accept_ar_e), promotion=P6,
             expect={"codes": [], "aborts": [], "warnings": ["inconclusive_accepted"]}),
    Scenario("cancel-queue-on-failure", "denied_inconclusive_holds_p6",
             "AR-e ended Inconclusive: the queue waits for a human, nothing is aborted.",
             "2026-08-12T10:34:00+00:00", with_run(_inconclusive), promotion=P6,
             expect={"codes": ["verification_inconclusive"], "aborts": []}),
    Scenario("cancel-queue-on-failure", "allowed_verification_running_p6",
             "AR-e is still Running: nothing failed, nothing to abort (block-while-verifying holds P6).",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P6, expect={"codes": [], "aborts": []}),
    # freeze-window (off by default; these examples give it windows)
    Scenario("freeze-window", "denied_release_freeze_p6",
             "A one-off release freeze covers 12 to 14 August (Berlin): P6 is denied until it ends.",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P6, expect={"codes": ["freeze_window"]},
             parameters={"time_zone": "Europe/Berlin", "windows": [
                 {"name": "release-freeze",
                  "start": "2026-08-12T00:00:00+02:00", "end": "2026-08-14T00:00:00+02:00"}]}),
    Scenario("freeze-window", "denied_weekly_window_prospective_prod",
             "Wednesdays 12:00-14:00 in Berlin are frozen; at 12:33 a new prod Promotion (the admission webhook's "
             "question) is denied.",
             "2026-08-12T10:33:30+00:00", snapshot, stage="prod", freight=F3, expect={"codes": ["freeze_window"]},
             parameters={"time_zone": "Europe/Berlin", "windows": [
                 {"name": "wednesday-lunch", "days": ["Wednesday"], "from": "12:00", "to": "14:00"}]}),
    Scenario("freeze-window", "allowed_outside_the_windows_p6",
             "Only weekends are frozen; a Wednesday passes.",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P6,
             parameters={"time_zone": "Europe/Berlin",
                         "windows": [{"name": "weekend", "days": ["Saturday", "Sunday"]}]}),
    # supersede-pending (off by default)
    Scenario("supersede-pending", "denied_older_freight_queued_behind_newer_p7",
             "P7 (Freight 10a9340, nginx 1.29.0) waits behind P6 (759376c, 1.29.1, newer, same Warehouse): "
             "P7 is superseded and aborted.",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P7, expect={"codes": ["superseded"], "aborts": [P7]}),
    Scenario("supersede-pending", "allowed_newer_freight_p6",
             "P6 carries the newer Freight: allowed, and P7's abort is reported.",
             "2026-08-12T10:33:30+00:00", snapshot, promotion=P6, expect={"codes": [], "aborts": [P7]}),
    Scenario("supersede-pending", "allowed_new_freight_supersedes_the_queue_prospective_prod",
             "A new prod Promotion of the newest Freight (0ccf689, 1.29.2): P6 and P7 are superseded.",
             "2026-08-12T10:33:30+00:00", snapshot, stage="prod", freight=F3, expect={"codes": [], "aborts": [P6, P7]}),
]  # fmt: skip


async def build(fixtures: Path) -> dict[Path, dict[str, Any]]:
    """Every example file's content, by path."""
    out: dict[Path, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            db = Database(f"sqlite+aiosqlite:///{tmp}/{scenario.name}.db")
            await upgrade(db)
            store = StateStore(db)
            for body in scenario.bodies(fixtures):
                await store.apply(parse_body(body, None if _is_one_document(body) else "application/x-ndjson"))
            _, document = await build_input(
                store,
                "kargo-demo",
                _at(scenario.now),
                promotion=scenario.promotion,
                stage=scenario.stage,
                freight=scenario.freight,
            )
            await db.dispose()
            expect = dict(scenario.expect)
            expect.setdefault("allow", scenario.name.startswith("allowed_"))
            path = ROOT / "policies" / scenario.policy / "examples" / f"{scenario.name}.json"
            example: dict[str, Any] = {"description": scenario.description, "input": document, "expect": expect}
            if scenario.parameters is not None:
                example["parameters"] = scenario.parameters
            out[path] = example
    return out


def _is_one_document(body: bytes) -> bool:
    try:
        json.loads(body)
    except json.JSONDecodeError:
        return False
    return True


def render(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2, sort_keys=True) + "\n"


def main() -> None:
    files = asyncio.run(build(kargo_fixtures_dir()))
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(content))
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
