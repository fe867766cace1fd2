"""Engine parity: the built-in policies answer the same on regopy and on a real OPA.

Tests, examples, and generated Stage states (queue shapes, phases, timestamps, health, reused runs) must
give the same decision: allow, reason codes and abort actions. A difference fails with the input.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_server.engine import Bundle, OpaEvaluator, RegopyEvaluator, WorkerPool
from policy_server.kargo import (
    KargoStage,
    PromotionFacts,
    RunFacts,
    StageFacts,
    VerificationRecord,
    current_record,
    decision_input,
    queue_key,
    verification_of,
)
from policy_server.service.examples import load_examples
from policy_server.service.policies import read_policy_dir
from tests.conftest import ROOT, OpaProcess, opa_binary

FOLDERS = sorted(p for p in (ROOT / "policies").iterdir() if (p / "policy.rego").is_file())
T0 = datetime(2026, 8, 12, 10, 0, tzinfo=UTC)
PHASES = ["", "Pending", "Running"]
TERMINAL = ["Succeeded", "Failed", "Errored", "Aborted"]
RUN_PHASES = ["", "Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]
RECORD_PHASES = ["Pending", "Running", "Successful", "Failed", "Error", "Inconclusive", "Aborted"]
HEALTH = [None, "Healthy", "Progressing", "Unknown", "Unhealthy", "NotApplicable"]


def _ulid(ms: int, suffix: int) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value, chars = ms, []
    for _ in range(10):
        chars.append(alphabet[value % 32])
        value //= 32
    return "".join(reversed(chars)) + f"{suffix:016d}"


def _promotion(offset_s: int, phase: str, suffix: int, collection: str | None = None) -> PromotionFacts:
    created = T0 + timedelta(seconds=offset_s)
    name = f"prod.{_ulid(int(created.timestamp() * 1000), suffix)}.abcdef{suffix % 10}"
    finished = created + timedelta(seconds=30) if phase in TERMINAL else None
    return PromotionFacts(
        namespace="ns",
        name=name,
        stage="prod",
        freight=f"f{suffix % 3}",
        phase=phase,
        queue_key=queue_key(name),
        created_at=created,
        started_at=created + timedelta(seconds=1) if phase in ("Running", *TERMINAL) else None,
        finished_at=finished,
        freight_collection=collection if phase == "Succeeded" else None,
        abort_requested=False,
    )


def _often(draw, tenths: int) -> bool:
    """True about ``tenths`` times in ten."""
    return draw(st.integers(1, 10)) <= tenths


@st.composite
def stage_states(draw) -> dict:
    """An input document for one Stage: history, queue, the verifying run, and the question."""
    history = [
        _promotion(i * 60, draw(st.sampled_from(TERMINAL)), i, collection=f"c{i % 2}")
        for i in range(draw(st.integers(0, 4)))
    ]
    if history and _often(draw, 8):
        history[-1] = _promotion((len(history) - 1) * 60, "Succeeded", len(history) - 1, collection="c9")
    queue = [
        _promotion(draw(st.integers(0, 3000)), draw(st.sampled_from(PHASES)), 100 + i)
        for i in range(draw(st.integers(0, 5)))
    ]
    succeeded = [p for p in history if p.phase == "Succeeded"]
    last = max(succeeded, key=lambda p: p.queue_key, default=None)
    runs: list[RunFacts] = []
    if last is not None and _often(draw, 8):
        # The run for L (created at or after L finished), or an older one Kargo reused (Kargo #6372).
        reused = _often(draw, 2)
        offset = draw(st.integers(0, 600))
        created = last.finished_at + timedelta(seconds=-86400 - offset if reused else offset)
        completed = created + timedelta(seconds=draw(st.integers(0, 2400)))
        phase = draw(st.sampled_from(RUN_PHASES))
        terminated = _often(draw, 2)
        runs.append(
            RunFacts(
                namespace="ns",
                name=f"prod.{_ulid(int(created.timestamp() * 1000), 7)}.abcdef7",
                stage="prod",
                freight_collection=last.freight_collection,
                promotion=last.name,
                phase="Successful" if terminated and _often(draw, 5) else phase,
                terminated=terminated,
                created_at=created,
                started_at=created,
                completed_at=completed if phase in ("Successful", "Failed", "Error", "Inconclusive") else None,
            )
        )
    records: list[VerificationRecord] = []
    if last is not None and _often(draw, 7):
        # Kargo's record: of the run, of its own abort, or of an Error without any run.
        named = runs[0].name if runs and _often(draw, 8) else None
        phase = draw(st.sampled_from(RECORD_PHASES))
        user_abort = phase == "Failed" and _often(draw, 4)
        finished = last.finished_at + timedelta(seconds=draw(st.integers(0, 3000)))
        records.append(
            VerificationRecord(
                id="rec-1",
                phase=phase,
                message="Verification aborted by user" if user_abort else None,
                run=named,
                run_phase=None,
                actor=None,
                started_at=last.finished_at,
                finished_at=finished if phase not in ("Pending", "Running") else None,
            )
        )
    last_phase = draw(st.sampled_from(["Succeeded", *TERMINAL, None]))
    kargo = KargoStage(
        freight_collection=last.freight_collection if last is not None and _often(draw, 9) else "c-other",
        records=tuple(records),
        last_promotion_phase=last_phase,
        reverify_requested=False,
        accepted_verification=draw(st.sampled_from([None, "rec-1", runs[0].name if runs else "x"])),
    )
    choices = queue + history
    asked = draw(st.sampled_from(choices)) if choices and _often(draw, 9) else None
    running = [p.name for p in queue if p.phase == "Running"]
    current = draw(st.sampled_from([None, *running])) if running else None
    stage = StageFacts(
        "ns",
        "prod",
        _often(draw, 8),
        draw(st.sampled_from(HEALTH)),
        current,
        last.name if last is not None and last_phase in ("Succeeded", None) else None,
        None,
        last_promotion_phase=last_phase,
        accepted_verification=kargo.accepted_verification,
    )
    now = T0 + timedelta(seconds=draw(st.integers(0, 4000)))
    ordered = sorted(queue, key=lambda p: (p.phase != "Running", p.queue_key))
    record, reused = current_record(kargo, last, runs)
    return decision_input(
        namespace="ns",
        now=now,
        promotion=asked,
        stage=stage if _often(draw, 9) else None,
        queue=ordered,
        recent=sorted(history, key=lambda p: p.queue_key, reverse=True),
        last_succeeded=last,
        verification=verification_of(last, runs, kargo),
        kargo_record=(record, reused) if record is not None else None,
    )


def _verdicts(outcomes) -> dict:
    return {
        o.policy_id: {
            "failure": o.failure.code if o.failure else None,
            "deny": sorted(d["code"] for d in o.deny),
            "abort": sorted(a["promotion"] for a in o.abort),
        }
        for o in outcomes
    }


# Parameter sets the built-ins are asked with besides their defaults (each flips what its policy does).
VARIANTS = {
    "admission": [{}],
    "block-while-verifying": [{"hold_unhealthy": True}],
    "cancel-queue-on-failure": [
        {"failure_phases": ["Failed"], "hold_on_inconclusive": False},
        {"failure_phases": ["Error", "Failed", "Inconclusive"], "hold_on_inconclusive": True},
    ],
}


@pytest.fixture(scope="module")
def engines():
    """Answers of regopy (one input per policy, and one input for all with preset parameters) and of OPA."""
    from policy_server.engine import PolicyCode
    from policy_server.engine._regopy import shared_document

    opa = OpaProcess(opa_binary(), ROOT / "test-artifacts" / "opa-parity.log")
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    opa.start()
    loop = asyncio.new_event_loop()
    regopy, preset_engine = RegopyEvaluator(WorkerPool(1)), RegopyEvaluator(WorkerPool(1))
    remote = OpaEvaluator([opa.url], timeout_s=5)
    loop.run_until_complete(remote.start())
    drafts = {f.name: read_policy_dir(f) for f in FOLDERS}
    codes = [PolicyCode(pid, d.source) for pid, d in drafts.items()]
    bundle = Bundle.of(codes)
    variants = [{pid: d.parameters for pid, d in drafts.items()}]
    variants += [{**variants[0], pid: value} for pid, values in VARIANTS.items() for value in values]
    presets = [Bundle.of(codes, parameters) for parameters in variants]

    def both(document: dict, variant: int = 0) -> tuple[dict, dict]:
        calls = [(pid, {**document, "parameters": variants[variant][pid]}) for pid in drafts]
        assert preset_engine.preset_request(presets[variant], calls, shared_document(calls)) is not None
        left = loop.run_until_complete(regopy.evaluate(bundle, calls))
        preset = loop.run_until_complete(preset_engine.evaluate(presets[variant], calls))
        right = loop.run_until_complete(remote.evaluate(bundle, calls))
        assert _verdicts(preset) == _verdicts(left), "preset parameters changed a verdict"
        assert not preset_engine.presets_off
        return _verdicts(left), _verdicts(right)

    both.variants = len(variants)
    yield both
    loop.run_until_complete(regopy.close())
    loop.run_until_complete(preset_engine.close())
    loop.run_until_complete(remote.close())
    loop.close()
    opa.kill()


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_rego_tests_pass_on_opa(folder):
    result = subprocess.run(
        # Only the Rego files: OPA would load the examples' JSON as data.
        [opa_binary(), "test", "--format", "json", *map(str, sorted(folder.glob("*.rego")))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcomes = json.loads(result.stdout or "[]")
    failed = [(o["name"], o.get("fail"), o.get("error")) for o in outcomes if o.get("fail") or o.get("error")]
    assert result.returncode == 0 and failed == [], (failed, result.stderr)
    assert len(outcomes) >= 5


def test_examples_decide_the_same_on_both_engines(engines):
    for folder in FOLDERS:
        for name, example in load_examples(folder):
            left, right = engines(example["input"])
            assert left == right, f"{folder.name}/examples/{name}: regopy {left} != OPA {right}"
            assert all(v["failure"] is None for v in left.values()), left


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(document=stage_states(), variant=st.integers(0, 3))
def test_generated_stage_states_decide_the_same_on_both_engines(engines, document, variant):
    left, right = engines(document, variant % engines.variants)
    assert left == right, f"regopy {left} != OPA {right} for input {json.dumps(document, indent=1)}"
    assert all(v["failure"] is None for v in left.values()), left
