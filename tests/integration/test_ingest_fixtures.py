"""The shared Kargo fixtures, ingested every way Kubernetes serves them, end in the documented state."""

from __future__ import annotations

import json
import random

from tests.conftest import load
from tests.integration.conftest import (
    AR_A,
    AR_E,
    NDJSON,
    PROD_P3,
    PROD_P5,
    PROD_P6,
    PROD_P7,
    PROD_P8,
    post,
    post_snapshot,
    stored_rows,
    watch_lines,
)


async def test_snapshot_files_one_by_one_give_prods_queue_and_running_verification(client, fixtures_dir):
    await post_snapshot(client, fixtures_dir)

    prod = (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json()
    assert [p["name"] for p in prod["queue"]] == [PROD_P6, PROD_P7]
    assert all(p["phase"] == "Pending" for p in prod["queue"])
    assert prod["last_succeeded_promotion"]["name"] == PROD_P5
    assert prod["current_verification"]["name"] == AR_E
    assert prod["current_verification"]["phase"] == "Running"
    assert prod["health"] == "Healthy" and prod["has_verification"] is True
    assert prod["current_freight"]["kargo_verification"]["analysis_run"] == AR_E
    assert prod["recent_promotions"][0]["name"] == PROD_P5

    uat = (await client.get("/v1/namespaces/kargo-demo/stages/uat")).json()
    assert [(p["name"][:13], p["phase"]) for p in uat["queue"]] == [("uat.01kztre7n", "Running")]
    assert uat["current_verification"] is None  # uat has no spec.verification

    p7 = (await client.get(f"/v1/namespaces/kargo-demo/promotions/{PROD_P7}")).json()
    assert p7["queue_position"] == 1 and p7["ahead"] == [PROD_P6]
    assert p7["object"]["metadata"]["resourceVersion"] == "182475"

    stages = (await client.get("/v1/namespaces/kargo-demo/stages")).json()
    assert [(s["name"], s["queued"]) for s in stages] == [("prod", 2), ("test", 0), ("uat", 1)]


async def test_the_list_records_the_same_state_as_the_files(client, fixtures_dir, database_url):
    response = await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    assert response.json() == {
        "items": 27,
        "applied": 25,
        "unchanged": 0,
        "stale": 0,
        "deleted": 0,
        "skipped": 2,
        "skipped_kinds": {"AnalysisTemplate": 1, "Warehouse": 1},
    }
    after_list = await stored_rows(database_url)
    await post_snapshot(client, fixtures_dir)
    assert await stored_rows(database_url) == after_list


async def test_the_watch_stream_aborts_the_queue_deletes_p3_and_p8_succeeds(client, fixtures_dir):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    response = await post(client, "\n".join(watch_lines(fixtures_dir)), NDJSON)
    assert response.status_code == 200
    counts = response.json()
    # The first five events are the watch's initial LIST at the snapshot's versions.
    assert (counts["unchanged"], counts["applied"], counts["deleted"]) == (5, 16, 1)

    assert (await client.get(f"/v1/namespaces/kargo-demo/promotions/{PROD_P3}")).status_code == 404
    p8 = (await client.get(f"/v1/namespaces/kargo-demo/promotions/{PROD_P8}")).json()
    assert p8["phase"] == "Succeeded"
    for name in (PROD_P6, PROD_P7):
        promotion = (await client.get(f"/v1/namespaces/kargo-demo/promotions/{name}")).json()
        assert promotion["phase"] == "Aborted" and promotion["abort_requested"] is True

    prod = (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json()
    assert prod["queue"] == []
    assert prod["last_succeeded_promotion"]["name"] == PROD_P8
    # Kargo reused AR-a (created two days before P8 finished): it does not verify P8 (Kargo #6372).
    assert prod["current_freight"]["kargo_verification"]["analysis_run"] == AR_A
    assert prod["current_verification"] is None


async def test_replaying_the_stream_twice_changes_nothing(client, fixtures_dir, database_url):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    stream = "\n".join(watch_lines(fixtures_dir))
    await post(client, stream, NDJSON)
    once = await stored_rows(database_url)
    again = (await post(client, stream, NDJSON)).json()
    assert again["applied"] == 0 and again["deleted"] == 0
    assert await stored_rows(database_url) == once


async def test_shuffled_replays_end_in_the_same_state_as_in_order(client, fixtures_dir, database_url):
    lines = watch_lines(fixtures_dir)
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    await post(client, "\n".join(lines), NDJSON)
    in_order = await stored_rows(database_url)

    rng = random.Random(2128)
    for _ in range(12):
        shuffled = lines[:]
        rng.shuffle(shuffled)
        # Split into several requests, as a reconnecting watch would deliver them.
        cut = rng.randrange(1, len(shuffled))
        await post(client, "\n".join(shuffled[:cut]), NDJSON)
        await post(client, "\n".join(shuffled[cut:]), NDJSON)
        assert await stored_rows(database_url) == in_order


async def test_shuffled_stream_into_an_empty_store_matches_in_order(client, fixtures_dir, database_url, tmp_path):
    """Order does not matter even from empty: a DELETED seen before its ADDED still wins."""
    lines = watch_lines(fixtures_dir)
    shuffled = lines[:]
    random.Random(3108).shuffle(shuffled)
    for line in shuffled:
        assert (await post(client, line, NDJSON)).status_code == 200
    shuffled_state = await stored_rows(database_url)
    assert any(name == PROD_P3 and deleted for (_, name, _, deleted, _) in shuffled_state["Promotion"])
    assert all(name != PROD_P3 or deleted for (_, name, _, deleted, _) in shuffled_state["Promotion"])
    newest = {}
    for line in lines:
        obj = json.loads(line)["object"]
        key = (obj["kind"], obj["metadata"]["name"])
        newest[key] = max(newest.get(key, 0), int(obj["metadata"]["resourceVersion"]))
    for kind, rows in shuffled_state.items():
        for _, name, rv, _, _ in rows:
            assert int(rv) == newest[(kind, name)]


async def test_the_snapshot_posted_after_the_stream_changes_nothing(client, fixtures_dir, database_url):
    await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
    await post(client, "\n".join(watch_lines(fixtures_dir)), NDJSON)
    before = await stored_rows(database_url)
    counts = (await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())).json()
    assert counts["applied"] == 0 and counts["stale"] > 0
    await post_snapshot(client, fixtures_dir)
    assert await stored_rows(database_url) == before


async def test_an_object_is_stored_exactly_as_served(client, fixtures_dir):
    path = fixtures_dir / "snapshot" / "stages" / "prod.json"
    await post(client, path.read_bytes())
    stored = (await client.get("/v1/state/stages/kargo-demo/prod")).json()
    assert stored["object"] == load(path)
    assert list(stored["object"]) == list(load(path))  # key order kept
    assert stored["resource_version"] == "182379"
