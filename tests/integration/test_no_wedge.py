"""Every denial of the built-in policies clears: each test drives the event a policy README names and sees the
next decision change (policies/*/README.md, "how it clears"), and checks that holds Kargo could never clear are
not placed (the Stage's current Promotion, after a failed Promotion, an Unhealthy Stage).

State changes are posted as Kargo and Argo Rollouts would write them: whole objects with a newer resourceVersion.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.conftest import AR_E, NDJSON, PROD_P5, PROD_P6, PROD_P7, post, watch_lines
from tests.integration.test_decisions import by_policy, codes, decide

ACCEPT = "policy-server.dev/accept-verification"


class Cluster:
    """The demo project as recorded, changed object by object the way the controllers would."""

    def __init__(self, client: Any, fixtures_dir: Path) -> None:
        self.client = client
        self.objects: dict[tuple[str, str], dict] = {}
        for path in (fixtures_dir / "snapshot").rglob("*.json"):
            obj = json.loads(path.read_text())
            if "kind" in obj and obj["metadata"].get("namespace") == "kargo-demo":
                self.objects[(obj["kind"], obj["metadata"]["name"])] = obj
        self.rv = 10_000_000
        self.fixtures_dir = fixtures_dir
        self.template_run = copy.deepcopy(self.objects[("AnalysisRun", AR_E)])

    async def start(self) -> None:
        response = await post(self.client, (self.fixtures_dir / "list-kargo-demo.json").read_bytes())
        assert response.status_code == 200, response.text

    async def put(self, obj: dict) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objects[(obj["kind"], obj["metadata"]["name"])] = obj
        response = await post(self.client, obj)
        assert response.status_code == 200, response.text
        return obj

    async def change(self, kind: str, name: str, mutate: Callable[[dict], None]) -> dict:
        obj = copy.deepcopy(self.objects[(kind, name)])
        mutate(obj)
        return await self.put(obj)

    async def delete(self, kind: str, name: str) -> None:
        obj = copy.deepcopy(self.objects.pop((kind, name)))
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        line = json.dumps({"type": "DELETED", "object": obj}) + "\n"
        response = await post(self.client, line, NDJSON)
        assert response.status_code == 200, response.text


def record(stage: dict, **fields: Any) -> None:
    """Kargo's newest verification record of the Stage's current Freight, replaced."""
    history = stage["status"]["freightHistory"][0].setdefault("verificationHistory", [])
    entry = {k: v for k, v in fields.items() if v is not None}
    if history and history[0].get("id") == entry.get("id"):
        history[0] = entry
    else:
        history.insert(0, entry)


def run_ended(phase: str, at: str, message: str | None = None) -> Callable[[dict], None]:
    def mutate(run: dict) -> None:
        run["status"].update(phase=phase, completedAt=at)
        if message:
            run["status"]["message"] = message

    return mutate


def new_run(cluster: Cluster, name: str, collection: str, created: str, phase: str) -> dict:
    """A run Kargo starts for the Stage's current Freight (a first verification or a reverify)."""
    run = copy.deepcopy(cluster.template_run)
    run["metadata"].update(name=name, creationTimestamp=created, uid=name)
    run["metadata"]["labels"]["kargo.akuity.io/freight-collection"] = collection
    run["spec"].pop("terminate", None)
    run["status"] = {"phase": phase, "startedAt": created}
    return run


def terminated(run: dict) -> None:
    """A run someone stopped (spec.terminate): Argo Rollouts reports it Successful, "Run Terminated"."""
    run["spec"]["terminate"] = True
    run["status"].update(phase="Successful", message="Run Terminated", completedAt="2026-08-12T10:33:40Z")


def stage_edit(**status: Any) -> Callable[[dict], None]:
    def mutate(stage: dict) -> None:
        stage["status"].update(status)

    return mutate


# --- block-while-verifying ------------------------------------------------------------------------------


async def test_verification_in_progress_clears_when_the_run_ends_also_inside_the_promotion(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    assert by_policy(await decide(client, PROD_P6)) == {"block-while-verifying": {"verification_in_progress"}}

    # Inside: Kargo started P6 (older Kargo did while a run was going); its http step asks. The run ends on
    # its own, so waiting there clears too.
    await cluster.change("Promotion", PROD_P6, lambda p: p["status"].update(phase="Running"))
    await cluster.change("Stage", "prod", stage_edit(currentPromotion={"name": PROD_P6}))
    assert codes(await decide(client, PROD_P6)) == {"verification_in_progress"}

    await cluster.change("AnalysisRun", AR_E, run_ended("Successful", "2026-08-12T10:33:52Z"))
    assert (await decide(client, PROD_P6))["allow"] is True


async def test_not_started_is_held_only_where_kargo_will_start_it_and_clears_when_it_does(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    # No run and no record for P5's Freight yet; prod is Healthy, nothing is current: Kargo will verify.
    await cluster.delete("AnalysisRun", AR_E)
    await cluster.change("Stage", "prod", lambda s: s["status"]["freightHistory"][0].update(verificationHistory=[]))
    assert by_policy(await decide(client, PROD_P6)) == {"block-while-verifying": {"verification_not_started"}}

    # Never for the Stage's current Promotion: Kargo starts no verification while it runs.
    await cluster.change("Promotion", PROD_P6, lambda p: p["status"].update(phase="Running"))
    await cluster.change("Stage", "prod", stage_edit(currentPromotion={"name": PROD_P6}))
    assert (await decide(client, PROD_P6))["allow"] is True
    await cluster.change("Promotion", PROD_P6, lambda p: p["status"].update(phase="Pending"))
    await cluster.change("Stage", "prod", stage_edit(currentPromotion=None))
    assert codes(await decide(client, PROD_P6)) == {"verification_not_started"}

    # Nor on an Unhealthy Stage (Kargo never verifies one).
    await cluster.change("Stage", "prod", lambda s: s["status"]["health"].update(status="Unhealthy"))
    assert (await decide(client, PROD_P6))["allow"] is True
    await cluster.change("Stage", "prod", lambda s: s["status"]["health"].update(status="Healthy"))

    # The clearing event: Kargo starts the verification, then the run succeeds.
    collection = cluster.objects[("Stage", "prod")]["status"]["freightHistory"][0]["id"]
    run = new_run(cluster, "prod.01kztrm0000000000000000000.1265247", collection, "2026-08-12T10:35:00Z", "Running")
    await cluster.put(run)
    assert codes(await decide(client, PROD_P6)) == {"verification_in_progress"}
    await cluster.change("AnalysisRun", run["metadata"]["name"], run_ended("Successful", "2026-08-12T10:40:00Z"))
    assert (await decide(client, PROD_P6))["allow"] is True


async def test_after_a_promotion_that_did_not_succeed_nothing_waits_for_a_verification(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    await cluster.delete("AnalysisRun", AR_E)
    await cluster.change("Stage", "prod", lambda s: s["status"]["freightHistory"][0].update(verificationHistory=[]))
    assert codes(await decide(client, PROD_P7)) >= {"verification_not_started"}
    # P6 fails: Kargo keeps health Unknown and verifies nothing until a Promotion succeeds.
    await cluster.change(
        "Promotion", PROD_P6, lambda p: p["status"].update(phase="Failed", finishedAt="2026-08-12T10:34:00Z")
    )
    await cluster.change(
        "Stage",
        "prod",
        stage_edit(
            lastPromotion={"name": PROD_P6, "status": {"phase": "Failed"}},
            health={"status": "Unknown", "issues": ["Cannot assess health because last Promotion did not succeed"]},
        ),
    )
    assert (await decide(client, PROD_P7))["allow"] is True


async def test_a_reused_run_holds_until_a_reverify_starts_a_new_one(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    lines = watch_lines(fixtures_dir)
    await cluster.start()
    await post(client, "\n".join(lines), NDJSON)
    objects = [json.loads(line)["object"] for line in lines]
    last_prod = [o for o in objects if o["kind"] == "Stage" and o["metadata"]["name"] == "prod"][-1]
    cluster.objects[("Stage", "prod")] = last_prod
    held = await decide(client, stage="prod", freight="0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9")
    assert by_policy(held) == {"block-while-verifying": {"verification_reused"}}
    assert "reverify" in held["reasons"][0]["message"]

    # Kargo reverifies: a new run for P8's Freight and a new record naming it.
    collection = last_prod["status"]["freightHistory"][0]["id"]
    name = "prod.01kzts30000000000000000000.c3ff505"
    await cluster.put(new_run(cluster, name, collection, "2026-08-12T10:46:00Z", "Running"))
    await cluster.change(
        "Stage",
        "prod",
        lambda s: record(
            s,
            id="reverify-1",
            phase="Running",
            analysisRun={"name": name, "namespace": "kargo-demo", "phase": "Running"},
            startTime="2026-08-12T10:46:00Z",
        ),
    )
    assert codes(await decide(client, stage="prod", freight="0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9")) == {
        "verification_in_progress"
    }
    await cluster.change("AnalysisRun", name, run_ended("Successful", "2026-08-12T10:50:00Z"))
    assert (await decide(client, stage="prod", freight="0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9"))["allow"] is True


# --- cancel-queue-on-failure ----------------------------------------------------------------------------


def aborts(decision) -> set[str]:
    return {a["promotion"]["name"] for a in decision["actions"]}


async def test_a_stopped_run_waits_for_kargos_record_which_decides_whether_it_failed(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()

    await cluster.change("AnalysisRun", AR_E, terminated)
    waiting = await decide(client, PROD_P6)
    assert codes(waiting) == {"verification_in_progress"} and not waiting["actions"]
    assert "waiting for Kargo" in waiting["reasons"][0]["message"]

    # Kargo's abort: its record says Failed "Verification aborted by user": the queue is cancelled.
    entry = cluster.objects[("Stage", "prod")]["status"]["freightHistory"][0]["verificationHistory"][0]
    aborted = dict(entry, phase="Failed", message="Verification aborted by user", finishTime="2026-08-12T10:33:41Z")
    await cluster.change("Stage", "prod", lambda s: record(s, **aborted))
    failed = await decide(client, PROD_P6)
    assert by_policy(failed) == {"cancel-queue-on-failure": {"verification_failed"}}
    assert aborts(failed) == {PROD_P6, PROD_P7}
    assert "aborted by a user" in failed["reasons"][0]["message"]


async def test_a_run_stopped_by_someone_else_counts_as_what_kargo_records(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()

    await cluster.change("AnalysisRun", AR_E, terminated)
    entry = cluster.objects[("Stage", "prod")]["status"]["freightHistory"][0]["verificationHistory"][0]
    await cluster.change("Stage", "prod", lambda s: record(s, **dict(entry, phase="Successful")))
    allowed = await decide(client, PROD_P6)
    assert allowed["allow"] is True and allowed["actions"] == []


async def test_an_error_kargo_recorded_without_any_run_cancels_the_queue(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    await cluster.delete("AnalysisRun", AR_E)
    message = "Rollouts integration is disabled on this controller: cannot start verification"
    await cluster.change(
        "Stage",
        "prod",
        lambda s: s["status"]["freightHistory"][0].update(
            verificationHistory=[
                {"id": "no-run-1", "phase": "Error", "message": message, "finishTime": "2026-08-12T10:33:52Z"}
            ]
        ),
    )
    failed = await decide(client, PROD_P6)
    assert by_policy(failed) == {"cancel-queue-on-failure": {"verification_failed"}}
    assert aborts(failed) == {PROD_P6, PROD_P7}
    assert message in failed["reasons"][0]["message"]
    stage = (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json()
    assert stage["current_verification"]["source"] == "kargo"
    assert stage["current_verification"]["name"] is None


async def test_inconclusive_clears_when_a_person_accepts_it_and_each_use_is_logged(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    await cluster.change("AnalysisRun", AR_E, run_ended("Inconclusive", "2026-08-12T10:33:52Z"))
    held = await decide(client, PROD_P6)
    assert by_policy(held) == {"cancel-queue-on-failure": {"verification_inconclusive"}}
    assert f"kubectl annotate stage prod -n kargo-demo {ACCEPT}={AR_E}" in held["reasons"][0]["message"]
    assert held["actions"] == []

    # Inside the running Promotion too (a reverify cannot start there): the annotation is the way out.
    await cluster.change("Promotion", PROD_P6, lambda p: p["status"].update(phase="Running"))
    await cluster.change("Stage", "prod", stage_edit(currentPromotion={"name": PROD_P6}))
    assert codes(await decide(client, PROD_P6)) == {"verification_inconclusive"}

    # Accepting another run changes nothing; accepting this one lets the queue move on, with a warning.
    await cluster.change("Stage", "prod", lambda s: s["metadata"].setdefault("annotations", {}).update({ACCEPT: "x"}))
    assert codes(await decide(client, PROD_P6)) == {"verification_inconclusive"}
    await cluster.change("Stage", "prod", lambda s: s["metadata"]["annotations"].update({ACCEPT: AR_E}))
    accepted = await decide(client, PROD_P6)
    assert accepted["allow"] is True
    assert {w["code"] for w in accepted["warnings"]} == {"inconclusive_accepted"}
    logged = (await client.get(f"/v1/decisions/{accepted['id']}")).json()
    assert {w["code"] for w in logged["warnings"]} == {"inconclusive_accepted"}


async def test_inconclusive_also_clears_by_a_reverify(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    await cluster.change("AnalysisRun", AR_E, run_ended("Inconclusive", "2026-08-12T10:33:52Z"))
    assert codes(await decide(client, PROD_P6)) == {"verification_inconclusive"}
    collection = cluster.objects[("Stage", "prod")]["status"]["freightHistory"][0]["id"]
    name = "prod.01kztrz0000000000000000000.1265247"
    await cluster.put(new_run(cluster, name, collection, "2026-08-12T10:40:00Z", "Running"))
    assert codes(await decide(client, PROD_P6)) == {"verification_in_progress"}
    await cluster.change("AnalysisRun", name, run_ended("Successful", "2026-08-12T10:45:00Z"))
    assert (await decide(client, PROD_P6))["allow"] is True


# --- admission ------------------------------------------------------------------------------------------


async def test_admission_denials_clear_on_the_events_their_readme_names(client, fixtures_dir):
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    await cluster.change("AnalysisRun", AR_E, run_ended("Successful", "2026-08-12T10:33:52Z"))

    # not_queue_head: P7 waits behind P6 until P6 starts or ends.
    assert codes(await decide(client, PROD_P7)) == {"not_queue_head"}
    await cluster.change("Promotion", PROD_P6, lambda p: p["status"].update(phase="Running"))
    # another_running: now P6 runs; P7 waits for it to end.
    assert codes(await decide(client, PROD_P7)) == {"another_running"}
    await cluster.change(
        "Promotion", PROD_P6, lambda p: p["status"].update(phase="Errored", finishedAt="2026-08-12T10:36:00Z")
    )
    await cluster.change("Stage", "prod", stage_edit(lastPromotion={"name": PROD_P6, "status": {"phase": "Errored"}}))
    assert (await decide(client, PROD_P7))["allow"] is True

    # promotion_unknown: clears when the Promotion is recorded.
    fresh = "prod.01kztrzzzzzzzzzzzzzzzzzzzz.0ccf689"
    assert "promotion_unknown" in codes(await decide(client, fresh))
    promotion = copy.deepcopy(cluster.objects[("Promotion", PROD_P7)])
    promotion["metadata"].update(name=fresh, uid=fresh, creationTimestamp="2026-08-12T10:37:00Z")
    promotion["status"] = {"phase": "Pending"}
    await cluster.put(promotion)
    assert "promotion_unknown" not in codes(await decide(client, fresh))

    # promotion_terminal never clears: P5 ended.
    assert codes(await decide(client, PROD_P5)) == {"promotion_terminal"}
