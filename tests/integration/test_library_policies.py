"""The library policies (off by default): freeze-window and supersede-pending, through decisions by reference,
prospective decisions and the admission webhook, turned on and configured through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.integration.conftest import AR_E, PROD_P6, PROD_P7
from tests.integration.test_admission_reviews import _review
from tests.integration.test_decisions import by_policy, codes, decide
from tests.integration.test_no_wedge import Cluster, run_ended

F3 = "0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9"


def _offset(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


async def _state(client, fixtures_dir) -> Cluster:
    cluster = Cluster(client, fixtures_dir)
    await cluster.start()
    # The verification of P5 succeeded: P6 heads prod's queue and may start (absent the library policies).
    await cluster.change("AnalysisRun", AR_E, run_ended("Successful", "2026-08-12T10:33:52Z"))
    return cluster


async def test_library_policies_are_off_until_turned_on(client, fixtures_dir):
    await _state(client, fixtures_dir)
    for policy_id in ("freeze-window", "supersede-pending"):
        policy = (await client.get(f"/v1/policies/{policy_id}")).json()
        assert policy["builtin"] is True and policy["active"]["deleted"] is True
    decision = await decide(client, PROD_P6)
    assert decision["allow"] is True and decision["actions"] == []
    assert {p["id"] for p in decision["policies"]} == {"admission", "block-while-verifying", "cancel-queue-on-failure"}


async def test_a_freeze_window_denies_everywhere_and_says_when_it_opens(client, fixtures_dir):
    await _state(client, fixtures_dir)
    assert (await client.post("/v1/policies/freeze-window/restore")).status_code == 200
    now = datetime.now(UTC).replace(microsecond=0)
    end = now + timedelta(hours=2)
    window = {"name": "incident", "start": _offset(now - timedelta(hours=1)), "end": _offset(end)}
    patched = await client.patch(
        "/v1/policies/freeze-window", json={"scope": {"stages": ["prod"]}, "parameters": {"windows": [window]}}
    )
    assert patched.status_code == 200, patched.text

    denied = await decide(client, PROD_P6)
    assert by_policy(denied) == {"freeze-window": {"freeze_window"}}
    (reason,) = denied["reasons"]
    assert datetime.fromisoformat(reason["retry_after"]) == end and "incident" in reason["message"]
    assert datetime.fromisoformat(denied["retry_after"]) == end
    logged = (await client.get(f"/v1/decisions/{denied['id']}")).json()
    assert datetime.fromisoformat(logged["retry_after"]) == end

    # A new prod Promotion (the webhook's question) is denied at creation too; uat is out of scope.
    review = _review()
    review["request"]["namespace"] = review["request"]["object"]["metadata"]["namespace"] = "kargo-demo"
    answer = (await client.post("/v1/admission/promotions", json=review)).json()["response"]
    assert answer["allowed"] is False and "freeze-window" in answer["status"]["message"]
    assert "freeze_window" not in codes(await decide(client, "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"))

    # The window is moved into the past: P6 may start.
    past = {"name": "incident", "start": _offset(now - timedelta(hours=3)), "end": _offset(now - timedelta(hours=2))}
    assert (await client.patch("/v1/policies/freeze-window", json={"parameters": {"windows": [past]}})).is_success
    assert (await decide(client, PROD_P6))["allow"] is True


async def test_a_malformed_window_is_refused_and_changes_nothing(client, fixtures_dir):
    await _state(client, fixtures_dir)
    assert (await client.post("/v1/policies/freeze-window/restore")).status_code == 200
    for bad in (
        {"name": "x", "start": "2026-12-24T00:00:00Z", "end": "2026-12-25T00:00:00Z"},  # Z: regopy cannot parse
        {"name": "x", "days": ["Caturday"]},
        {"name": "x", "days": ["Monday"], "from": "25:00", "to": "08:00"},
        {"name": "x", "days": ["Monday"], "from": "18:00"},
    ):
        refused = await client.patch("/v1/policies/freeze-window", json={"parameters": {"windows": [bad]}})
        assert refused.status_code == 422, (bad, refused.text)
    assert (await client.get("/v1/policies/freeze-window")).json()["active"]["parameters"]["windows"] == []


async def test_newer_freight_supersedes_older_pending_promotions(client, fixtures_dir):
    await _state(client, fixtures_dir)
    assert (await client.post("/v1/policies/supersede-pending/restore")).status_code == 200
    # P7 (nginx 1.29.0) is queued behind P6 (1.29.1, newer, same Warehouse): superseded.
    p7 = await decide(client, PROD_P7)
    assert by_policy(p7)["supersede-pending"] == {"superseded"}
    assert [a["promotion"]["name"] for a in p7["actions"]] == [PROD_P7]
    p6 = await decide(client, PROD_P6)
    assert p6["allow"] is True and [a["promotion"]["name"] for a in p6["actions"]] == [PROD_P7]
    # A Promotion of the newest Freight (1.29.2) would supersede both.
    fresh = await decide(client, stage="prod", freight=F3)
    assert sorted(a["promotion"]["name"] for a in fresh["actions"]) == sorted([PROD_P6, PROD_P7])
