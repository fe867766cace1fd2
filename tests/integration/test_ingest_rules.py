"""Ingestion rules: versions only move forward, deletions stick, bad input changes nothing."""

from __future__ import annotations

import copy
import json

import pytest

from tests.conftest import app_client, load
from tests.integration.conftest import NDJSON, PROD_P6, post, stored_rows

P6_PATH = ("snapshot", "promotions", f"{PROD_P6}.json")
P6_URL = f"/v1/namespaces/kargo-demo/promotions/{PROD_P6}"


def p6(fixtures_dir, rv: str, phase: str = "Pending") -> dict:
    obj = load(fixtures_dir.joinpath(*P6_PATH))
    obj["metadata"]["resourceVersion"] = rv
    obj["status"]["phase"] = phase
    return obj


async def test_an_older_version_never_overwrites_a_newer_one(client, fixtures_dir):
    # "900" < "1000" numerically, although it sorts after it as text.
    assert (await post(client, p6(fixtures_dir, "1000", "Running"))).json()["applied"] == 1
    counts = (await post(client, p6(fixtures_dir, "900", "Pending"))).json()
    assert counts["stale"] == 1 and counts["applied"] == 0
    assert (await client.get(P6_URL)).json()["phase"] == "Running"
    assert (await post(client, p6(fixtures_dir, "1000", "Running"))).json()["unchanged"] == 1
    assert (await post(client, p6(fixtures_dir, "1001", "Succeeded"))).json()["applied"] == 1
    assert (await client.get(P6_URL)).json()["phase"] == "Succeeded"


async def test_within_one_request_the_newest_version_wins_whatever_the_order(client, fixtures_dir):
    events = [
        {"type": "MODIFIED", "object": p6(fixtures_dir, "1002", "Running")},
        {"type": "ADDED", "object": p6(fixtures_dir, "1001", "Pending")},
    ]
    counts = (await post(client, "\n".join(json.dumps(e) for e in events), NDJSON)).json()
    assert (counts["applied"], counts["stale"]) == (1, 1)
    assert (await client.get(P6_URL)).json()["phase"] == "Running"


async def test_a_deletion_is_remembered_so_a_late_older_added_cannot_revive(client, fixtures_dir):
    await post(client, {"type": "ADDED", "object": p6(fixtures_dir, "1000")})
    assert (await post(client, {"type": "DELETED", "object": p6(fixtures_dir, "1005")})).json()["deleted"] == 1
    assert (await client.get(P6_URL)).status_code == 404
    late = (await post(client, {"type": "ADDED", "object": p6(fixtures_dir, "1003")})).json()
    assert late["stale"] == 1
    assert (await client.get(P6_URL)).status_code == 404
    same = (await post(client, p6(fixtures_dir, "1005"))).json()
    assert same["stale"] == 1
    # A newer version (the object was created again) does come back.
    assert (await post(client, p6(fixtures_dir, "1010"))).json()["applied"] == 1
    assert (await client.get(P6_URL)).status_code == 200


async def test_a_deletion_seen_before_the_object_still_wins(client, fixtures_dir):
    assert (await post(client, {"type": "DELETED", "object": p6(fixtures_dir, "1005")})).json()["deleted"] == 1
    assert (await post(client, {"type": "ADDED", "object": p6(fixtures_dir, "1000")})).json()["stale"] == 1
    assert (await client.get(P6_URL)).status_code == 404
    stage = (await client.get("/v1/namespaces/kargo-demo/stages")).json()
    assert stage == []


async def test_delete_endpoint_forgets_an_object_and_404s_for_unknown_ones(client, fixtures_dir):
    await post(client, p6(fixtures_dir, "1000"))
    assert (await client.delete(f"/v1/state/promotions/kargo-demo/{PROD_P6}")).status_code == 204
    assert (await client.get(P6_URL)).status_code == 404
    assert (await post(client, p6(fixtures_dir, "1000"))).json()["stale"] == 1
    again = await client.delete(f"/v1/state/promotions/kargo-demo/{PROD_P6}")
    assert again.status_code == 404 and again.json()["code"] == "not_found"
    bad_kind = await client.delete("/v1/state/warehouses/kargo-demo/x")
    assert bad_kind.status_code == 422 and "unknown kind" in bad_kind.json()["detail"]


def _malformed_bodies(fixtures_dir):
    good = p6(fixtures_dir, "1000")
    stream = (fixtures_dir / "watch-prod-verification-failed.jsonl").read_text().splitlines()
    no_name = copy.deepcopy(good)
    del no_name["metadata"]["name"]
    wrong_type = copy.deepcopy(good)
    wrong_type["status"]["phase"] = ["Pending"]
    bad_time = copy.deepcopy(good)
    bad_time["metadata"]["creationTimestamp"] = "12/08/2026"
    bad_list = load(fixtures_dir / "list-kargo-demo.json")
    bad_list["items"][7]["spec"] = "not an object"
    return [
        ("not-json", b'{"kind": ', "application/json", None),
        ("missing-name", json.dumps(no_name).encode(), "application/json", "metadata.name"),
        ("wrong-type", json.dumps(wrong_type).encode(), "application/json", "status.phase"),
        ("bad-timestamp", json.dumps(bad_time).encode(), "application/json", "metadata.creationTimestamp"),
        ("list-item", json.dumps(bad_list).encode(), "application/json", "items[7].spec"),
        ("ndjson-line", "\n".join(stream[:5] + ["[oops"] + stream[5:]).encode(), "application/x-ndjson", None),
        ("event-type", b'{"type": "CHANGED", "object": {}}', "application/json", "type"),
        ("no-kind", b'{"apiVersion": "v1", "metadata": {"name": "x"}}', "application/json", "kind"),
        ("empty", b"   ", "application/json", None),
    ]


@pytest.mark.parametrize(
    "case",
    range(9),
    ids=lambda i: [
        "not-json",
        "missing-name",
        "wrong-type",
        "bad-timestamp",
        "list-item",
        "ndjson-line",
        "event-type",
        "no-kind",
        "empty",
    ][i],
)
async def test_malformed_input_is_a_422_problem_and_stores_nothing(client, fixtures_dir, database_url, case):
    name, body, content_type, field = _malformed_bodies(fixtures_dir)[case]
    response = await client.post("/v1/state", content=body, headers={"content-type": content_type})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422 and problem["code"] in ("invalid_state", "invalid_input")
    assert problem["detail"]
    if field is not None:
        assert any(e.get("field") == field for e in problem["errors"]), problem
    if name == "ndjson-line":
        assert problem["errors"][0]["line"] == 6
    assert all(rows == [] for rows in (await stored_rows(database_url)).values())


async def test_a_body_over_the_limit_is_413_and_stores_nothing(settings, fixtures_dir, database_url):
    from dataclasses import replace

    small = replace(settings, max_body_bytes=50_000)
    async with app_client(small) as client:
        response = await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        assert (await post(client, p6(fixtures_dir, "1"))).status_code == 200
    rows = await stored_rows(database_url)
    assert sum(len(r) for r in rows.values()) == 1


async def test_unknown_objects_are_404_problems(client):
    for url in (
        "/v1/namespaces/kargo-demo/stages/nope",
        "/v1/namespaces/kargo-demo/promotions/nope",
        "/v1/state/freights/kargo-demo/nope",
    ):
        response = await client.get(url)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "nope" in response.json()["detail"]


async def test_bad_query_parameters_are_422_problems(client, fixtures_dir):
    await post(client, (fixtures_dir / "snapshot" / "stages" / "prod.json").read_bytes())
    response = await client.get("/v1/namespaces/kargo-demo/stages/prod?recent=-1")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_input"
    assert (await client.get("/v1/namespaces/kargo-demo/stages/prod?recent=1")).status_code == 200
