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
