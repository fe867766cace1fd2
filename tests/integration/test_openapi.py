"""The OpenAPI document: committed copy in sync, operation ids, examples, and docs served offline."""

from __future__ import annotations

import json
import re

from tests.conftest import ROOT


async def test_the_committed_spec_is_what_the_app_serves(client):
    served = (await client.get("/docs/openapi.json")).json()
    committed = json.loads((ROOT / "openapi" / "openapi.json").read_text())
    assert served == committed, "openapi/openapi.json is stale: run `make openapi` (policy-server openapi)"


async def test_every_operation_has_an_id_a_tag_and_a_summary(client):
    spec = (await client.get("/docs/openapi.json")).json()
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert len(operations) >= 8
    for op in operations:
        assert re.fullmatch(r"[A-Z][A-Za-z]+", op["operationId"]), op["operationId"]
        assert op["tags"] and op.get("summary")
    ingest = spec["paths"]["/v1/state"]["post"]
    assert set(ingest["requestBody"]["content"]) == {"application/json", "application/x-ndjson", "application/yaml"}
    examples = ingest["requestBody"]["content"]["application/json"]["examples"]
    assert examples["object"]["value"]["kind"] == "Promotion"
    assert "422" in ingest["responses"] and "413" in ingest["responses"]


async def test_the_docs_page_loads_its_assets_from_the_app_not_a_cdn(client):
    page = (await client.get("/docs/")).text
    assets = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200 and len(response.content) > 100
    root = await client.get("/", follow_redirects=False)
    assert root.status_code == 302 and root.headers["location"] == "/docs/"


def _success_responses(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status in ("200", "201"):
                    for media_type, content in (response.get("content") or {}).items():
                        yield f"{method.upper()} {path} {status} {media_type}", content


async def test_every_success_response_shows_a_real_answer_that_fits_its_schema(client):
    """The docs show what the demo project really answers (captured by `make examples`), and each example still
    matches the schema it documents: an API change that the examples no longer fit fails here."""
    from jsonschema import Draft202012Validator

    spec = (await client.get("/docs/openapi.json")).json()
    missing, misfits = [], []
    for where, content in _success_responses(spec):
        examples = content.get("examples") or {}
        if not examples:
            missing.append(where)
            continue
        value = next(iter(examples.values()))["value"]
        if "json" not in where.rsplit(" ", 1)[1] or "ndjson" in where:
            assert isinstance(value, str) and value.strip(), where
            continue
        validator = Draft202012Validator({**content["schema"], "components": spec["components"]})
        misfits += [f"{where}: {error.json_path}: {error.message[:200]}" for error in validator.iter_errors(value)]
    assert missing == [], "no example: run `make examples`"
    assert misfits == [], "examples that no longer fit their schema: run `make examples`"
    decide = spec["paths"]["/v1/decisions"]["post"]["responses"]["200"]["content"]["application/json"]
    answer = decide["examples"]["kargo-demo"]["value"]
    assert answer["promotion"]["namespace"] == "kargo-demo" and answer["actions"], "a decision from the demo project"


async def test_the_captured_examples_come_from_a_run_over_the_demo_project():
    """`make examples` still runs through every operation, and gives what is committed, operation by operation."""
    from policy_server.api.examples import load_json
    from tests.support.capture_examples import capture

    fresh = await capture()
    committed = load_json("responses.json")
    shape = {op: {status: sorted(types) for status, types in by.items()} for op, by in fresh.items()}
    assert shape == {op: {status: sorted(types) for status, types in by.items()} for op, by in committed.items()}
    assert (
        fresh["GetStage"]["200"]["application/json"]["queue"]
        == committed["GetStage"]["200"]["application/json"]["queue"]
    )
