"""Decisions by reference: the worked scenario of the fixtures, claims, the decision log, the verdict cache."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import replace

import pytest

from tests.conftest import app_client, load
from tests.integration.conftest import NDJSON, PROD_P5, PROD_P6, PROD_P7, PROD_P8, post, settled, watch_lines

F3 = "0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9"


async def decide(client, name=None, *, claim=False, stage=None, freight=None, namespace="kargo-demo"):
    body = (
        {"promotion": {"namespace": namespace, "name": name}}
        if name
        else {
            "stage": {"namespace": namespace, "name": stage},
            "freight": freight,
        }
    )
    if claim:
        body["claim"] = True
    response = await client.post("/v1/decisions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def codes(decision) -> set[str]:
    return {r["code"] for r in decision["reasons"]}


def by_policy(decision) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in decision["reasons"]:
        out.setdefault(r["policy"], set()).add(r["code"])
    return out


async def test_the_worked_scenario_of_the_fixtures(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    lines = watch_lines(fixtures_dir)

    # After the snapshot: AR-e verifies P5 and is Running, so P6 and P7 wait.
    p6 = await decide(client, PROD_P6)
    p7 = await decide(client, PROD_P7)
    assert p6["allow"] is False and by_policy(p6) == {"block-while-verifying": {"verification_in_progress"}}
    assert p7["allow"] is False and "verification_in_progress" in by_policy(p7)["block-while-verifying"]
    assert "not_queue_head" in by_policy(p7)["admission"]
    assert p6["actions"] == [] and p6["stage"] == {"namespace": "kargo-demo", "name": "prod"}
    assert {p["id"] for p in p6["policies"]} == {"admission", "block-while-verifying", "cancel-queue-on-failure"}

    # AR-e fails: a decision on P6 carries abort actions for P6 and P7, with the patch that aborts them.
    await post(client, "\n".join(lines[:7]), NDJSON)
    failed = await decide(client, PROD_P6)
    assert failed["allow"] is False and "verification_failed" in codes(failed)
    assert [a["promotion"]["name"] for a in failed["actions"]] == [PROD_P6, PROD_P7]
    action = failed["actions"][0]
    assert action["type"] == "abort" and action["policy"] == "cancel-queue-on-failure"
    assert action["patch"] == {"metadata": {"annotations": {"kargo.akuity.io/abort": '{"action":"terminate"}'}}}
    assert json.loads(action["patch"]["metadata"]["annotations"]["kargo.akuity.io/abort"]) == {"action": "terminate"}

    # P6 and P7 get aborted; P8 is created after the failure and is judged normally: it may start.
    await post(client, "\n".join(lines[7:14]), NDJSON)
    p8 = await decide(client, PROD_P8)
    assert p8["allow"] is True, p8["reasons"]
    assert p8["actions"] == []

    # P8 succeeds and Kargo reuses AR-a, created two days before P8 finished (Kargo #6372): it does not
    # verify P8, so the next Promotion waits for a reverify (prod is Healthy and nothing is current).
    await post(client, "\n".join(lines[14:]), NDJSON)
    stage = (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json()
    assert stage["current_freight"]["kargo_verification"]["phase"] == "Successful"
    after = await decide(client, stage="prod", freight=F3)
    assert after["allow"] is False and after["prospective"] is True
    assert by_policy(after) == {"block-while-verifying": {"verification_reused"}}
    assert stage["current_freight"]["kargo_verification"]["reused"] is True
    finished = await decide(client, PROD_P8)
    assert "promotion_terminal" in codes(finished)


async def test_an_unknown_promotion_is_denied_and_logged(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    unknown = await decide(client, "prod.01kzzzzzzzzzzzzzzzzzzzzzzz.0ccf689")
    assert unknown["allow"] is False and "promotion_unknown" in codes(unknown)
    # Even with the admission policy switched off, the service fails closed.
    await client.delete("/v1/policies/admission")
    again = await decide(client, "prod.01kzzzzzzzzzzzzzzzzzzzzzzz.0ccf689")
    assert again["allow"] is False and by_policy(again) == {"policy-server": {"promotion_unknown"}}
    missing_stage = await decide(client, stage="nowhere", freight=F3)
    assert missing_stage["allow"] is False and "stage_missing" in codes(missing_stage)
    logged = (await client.get(f"/v1/decisions/{again['id']}")).json()
    assert logged["input"]["promotion"] is None and logged["allow"] is False
    # Logged under the Stage its name carries: "why is my Promotion pending?" finds it by Stage.
    assert logged["stage"] == {"namespace": "kargo-demo", "name": "prod"}
    by_stage = (await client.get("/v1/decisions", params={"stage": "prod", "code": "promotion_unknown"})).json()
    assert again["id"] in {d["id"] for d in by_stage["items"]}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"promotion": {"namespace": "kargo-demo"}},
        {"promotion": {"namespace": "", "name": "x"}},
        {"stage": {"namespace": "kargo-demo", "name": "prod"}},
        {"promotion": {"namespace": "a", "name": "b"}, "stage": {"namespace": "a", "name": "c"}, "freight": "f"},
        {"stage": {"namespace": "kargo-demo", "name": "prod"}, "freight": "f", "claim": True},
        {"promotion": {"namespace": "a", "name": "b"}, "unexpected": 1},
        {"promotion": "kargo-demo/prod"},
    ],
)
async def test_malformed_questions_are_422_problems_and_log_nothing(client, body):
    response = await client.post("/v1/decisions", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/v1/decisions")).json()["items"] == []


def _test_stage_promotions(fixtures_dir, count: int) -> list[dict]:
    """Pending Promotions for Stage `test` (no verification), as Kargo would name them."""
    template = load(fixtures_dir / "snapshot" / "promotions" / "test.01kztk6eebef8qhrq8vspkkmcg.0ccf689.json")
    out = []
    for i in range(count):
        p = copy.deepcopy(template)
        p["metadata"]["name"] = f"test.01kzv{i:021d}.0ccf689"
        p["metadata"]["resourceVersion"] = str(200000 + i)
        p["status"] = {"phase": "Pending"}
        out.append(p)
    return out


async def _many_pending(client, fixtures_dir, count):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    promotions = _test_stage_promotions(fixtures_dir, count)
    await post(client, {"apiVersion": "v1", "kind": "List", "items": promotions})
    # Without FIFO admission every one of them is allowed by the policies: only the claim can pick one.
    await client.delete("/v1/policies/admission")
    return [p["metadata"]["name"] for p in promotions]


async def test_fifty_concurrent_claims_give_exactly_one_allow(client, fixtures_dir):
    # The in-process client answers one request at a time: this checks the claim rules; truly concurrent
    # claims run against server processes in tests/e2e (one server, and two servers on one PostgreSQL).
    names = await _many_pending(client, fixtures_dir, 50)
    answers = await asyncio.gather(*(decide(client, n, claim=True) for n in names))
    winners = [a for a in answers if a["allow"]]
    assert len(winners) == 1 and winners[0]["claimed"] is True
    holder = winners[0]["promotion"]["name"]
    losers = [a for a in answers if not a["allow"]]
    assert all(codes(a) == {"stage_claimed"} and holder in a["reasons"][0]["message"] for a in losers)

    # A retry by the holder is allowed again; others, asking without claiming, are held too.
    assert (await decide(client, holder, claim=True))["allow"] is True
    other = next(n for n in names if n != holder)
    assert codes(await decide(client, other)) == {"stage_claimed"}

    # Once the holder is observed Running the claim ends (admission is off, so the next may claim).
    running = next(p for p in _test_stage_promotions(fixtures_dir, 50) if p["metadata"]["name"] == holder)
    running["status"] = {"phase": "Running"}
    running["metadata"]["resourceVersion"] = "300000"
    await post(client, running)
    assert (await decide(client, other, claim=True))["claimed"] is True


async def test_a_claim_expires_after_its_ttl(settings, fixtures_dir):
    async with app_client(replace(settings, claim_ttl_s=1)) as client:
        names = await _many_pending(client, fixtures_dir, 2)
        assert (await decide(client, names[0], claim=True))["claimed"] is True
        assert codes(await decide(client, names[1], claim=True)) == {"stage_claimed"}
        await asyncio.sleep(1.2)
        assert (await decide(client, names[1], claim=True))["claimed"] is True


async def test_polling_folds_identical_decisions_into_one_logged_entry(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    first = await decide(client, PROD_P6)
    for _ in range(4):
        again = await decide(client, PROD_P6)
        assert again["id"] == first["id"]
    assert again["repeat_count"] == 5
    page = (await client.get("/v1/decisions", params={"promotion": PROD_P6})).json()
    assert len(page["items"]) == 1 and page["items"][0]["repeat_count"] == 5
    assert page["items"][0]["last_at"] >= page["items"][0]["evaluated_at"]

    # The state changes: a new answer is a new entry.
    await post(client, "\n".join(watch_lines(fixtures_dir)[:7]), NDJSON)
    changed = await decide(client, PROD_P6)
    assert changed["id"] != first["id"] and changed["repeat_count"] == 1
    assert changed["id"] > first["id"]  # ids sort by time


async def test_log_filters_pagination_and_export(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    await decide(client, PROD_P6)
    await decide(client, PROD_P7)
    await decide(client, PROD_P5)
    await decide(client, stage="uat", freight=F3)
    await decide(client, "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689")

    async def ids(**params):
        return [
            d["promotion"]["name"] if d["promotion"] else "(prospective)"
            for d in (await client.get("/v1/decisions", params=params)).json()["items"]
        ]

    assert await ids(stage="prod") == [PROD_P5, PROD_P7, PROD_P6]  # newest first
    assert await ids(code="not_queue_head") == [PROD_P7]
    assert await ids(code="promotion_terminal") == [PROD_P5]
    assert await ids(policy="block-while-verifying") == [PROD_P5, PROD_P7, PROD_P6]
    assert await ids(allow="true") == ["uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"]
    assert len(await ids(allow="false")) == 4
    assert await ids(namespace="other") == []
    assert await ids(since="2999-01-01T00:00:00Z") == []
    assert len(await ids(until="2999-01-01T00:00:00Z")) == 5

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/decisions", params=params)).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)

    export = await client.get("/v1/decisions", params={"stage": "prod"}, headers={"accept": "application/x-ndjson"})
    assert export.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert len(rows) == 3 and all(r["input"]["namespace"] == "kargo-demo" for r in rows)

    bad = await client.get("/v1/decisions", params={"limit": 0})
    assert bad.status_code == 422
    assert (await client.get("/v1/decisions/01ZZZZZZZZZZZZZZZZZZZZZZZZ")).status_code == 404


async def test_retention_prunes_old_decisions_only(client, fixtures_dir, settings):
    from datetime import UTC, datetime, timedelta

    from policy_server.store import Database, DecisionStore

    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    old = await decide(client, PROD_P6)
    db = Database(settings.effective_database_url)
    try:
        store = DecisionStore(db)
        assert await store.prune(datetime.now(UTC) - timedelta(hours=1)) == 0
        assert await store.prune(datetime.now(UTC) + timedelta(seconds=1)) == 1
    finally:
        await db.dispose()
    assert (await client.get(f"/v1/decisions/{old['id']}")).status_code == 404
    fresh = await decide(client, PROD_P6)
    assert (await client.get(f"/v1/decisions/{fresh['id']}")).status_code == 200


async def test_unchanged_state_and_policies_are_answered_without_rego_and_still_logged(settings, fixtures_dir):
    # A cache that outlives the test, so that a slow machine cannot expire it between two questions.
    async with app_client(replace(settings, decision_cache_ms=600_000)) as client:
        await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
        await settled(client)  # verdicts computed when the state was recorded are not the questions' evaluations
        calls = 0
        first = await decide(client, PROD_P6)

        from policy_server.engine import RegopyEvaluator

        original = RegopyEvaluator.evaluate

        async def counting(self, bundle, items):
            nonlocal calls
            calls += 1
            return await original(self, bundle, items)

        RegopyEvaluator.evaluate = counting  # type: ignore[method-assign]
        try:
            again = await decide(client, PROD_P6)
            assert calls == 0 and again["allow"] is False and again["id"] == first["id"]
            # A state change is evaluated again (by the question, or ahead of it when the change is recorded).
            await post(client, "\n".join(watch_lines(fixtures_dir)[:7]), NDJSON)
            changed = await decide(client, PROD_P6)
            assert calls >= 1 and "verification_failed" in codes(changed)
        finally:
            RegopyEvaluator.evaluate = original  # type: ignore[method-assign]
        assert (await client.get("/v1/decisions", params={"promotion": PROD_P6})).json()["items"][0][
            "repeat_count"
        ] == 1


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # A 200 kB string through regex.match overflows regopy's stack: the worker dies.
        (
            'deny contains "x" if regex.match(`^(a|b)*$`, '
            'concat("", [s | some i in numbers.range(1, 100000); s := "ab"]))',
            {"engine_crashed"},
        ),
        # A loop over a billion numbers: stopped at the deadline, or earlier by the memory watchdog.
        (
            'deny contains "x" if {\n\tsome i in numbers.range(1, 1000000000)\n\ti < 0\n}',
            {"evaluation_timeout", "evaluation_memory_exceeded"},
        ),
        # Catastrophic backtracking: 40 a's and a mismatch.
        (
            'deny contains "x" if regex.match(`^(a+)+$`, '
            'concat("", array.concat([s | some i in numbers.range(1, 40); s := "a"], ["!"])))',
            {"evaluation_timeout"},
        ),
    ],
    ids=["segfault", "loop", "redos"],
)
async def test_a_policy_that_breaks_the_engine_denies_fail_closed_and_the_service_recovers(
    client, fixtures_dir, rule, expected
):
    import time

    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    uat_head = "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"
    assert (await decide(client, uat_head))["allow"] is True
    source = f"package policies.broken\n\nimport rego.v1\n\n{rule}\n"
    put = await client.put("/v1/policies/broken", json={"source": source, "scope": {"stages": ["uat"]}})
    assert put.status_code == 200, put.text

    started = time.monotonic()
    broken = await decide(client, uat_head)
    assert time.monotonic() - started < 10
    assert broken["allow"] is False
    assert {r["code"] for r in broken["reasons"] if r["policy"] == "broken"} <= expected
    assert codes(broken) & expected
    logged = (await client.get(f"/v1/decisions/{broken['id']}")).json()
    assert logged["allow"] is False

    # The service keeps answering; with the policy switched off the same question is allowed again.
    assert (await client.get("/health")).status_code == 200
    await client.delete("/v1/policies/broken")
    assert (await decide(client, uat_head))["allow"] is True


async def test_concurrent_decisions_share_decision_log_transactions_and_none_is_lost(database_url):
    """Group commit: each answer waits for its batch's commit, and answers arriving meanwhile share one."""
    from datetime import UTC, datetime

    from ulid import ULID

    from policy_server.service.decision_log import DecisionLogWriter
    from policy_server.store import Database, DecisionEntry, DecisionFilter, DecisionStore, upgrade

    db = Database(database_url)
    await upgrade(db)
    store = DecisionStore(db)
    batches: list[int] = []
    original = store.record_many

    async def slow_disk(entries):
        batches.append(len(entries))
        await asyncio.sleep(0.05)
        return await original(entries)

    store.record_many = slow_disk  # type: ignore[method-assign]
    writer = DecisionLogWriter(store)

    def entry(i: int) -> DecisionEntry:
        return DecisionEntry(
            id=str(ULID()), namespace="kargo-demo", stage="prod", promotion=f"p{i % 5}", prospective=False,
            freight=None, allow=False, claimed=False, evaluated_at=datetime.now(UTC), fold_key=f"k{i % 5}",
            input_hash="h", duration_ms=1.0, caller="test", result={}, input={}, reasons=[("deny", "x", "y")],
        )  # fmt: skip

    try:
        results = await asyncio.gather(*(writer.record(entry(i)) for i in range(40)))
        assert sum(batches) == 40 and len(batches) < 10, batches
        # Five questions, asked eight times each: five rows, each folded eight times, all committed.
        assert sorted(repeats for _, repeats in results)[-5:] == [8, 8, 8, 8, 8]
        rows = await store.list(DecisionFilter())
        assert len(rows) == 5 and sorted(r.repeat_count for r in rows) == [8] * 5
    finally:
        await writer.close()
        await db.dispose()
