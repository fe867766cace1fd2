"""YAML through the API: what `kubectl get -o yaml` prints is recorded like its JSON, errors name the line."""

from __future__ import annotations

import json

import yaml

from tests.integration.conftest import post

YAML = {"content-type": "application/yaml"}


async def test_the_demo_project_as_yaml_records_the_same_state_as_json(client, fixtures_dir):
    listed = json.loads((fixtures_dir / "list-kargo-demo.json").read_text())
    response = await post(client, yaml.safe_dump(listed), YAML)
    assert response.status_code == 200, response.text
    counts = response.json()
    assert counts["applied"] + counts["skipped"] == len(listed["items"]) and counts["applied"] > 20
    from_yaml = (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json()
    again = await post(client, json.dumps(listed))  # the same objects as JSON change nothing
    assert again.json()["unchanged"] == counts["applied"]
    assert (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json() == from_yaml


async def test_a_multi_document_stream_and_its_errors(client, fixtures_dir):
    stage = json.loads((fixtures_dir / "snapshot" / "stages" / "uat.json").read_text())
    broken = {**stage, "metadata": {**stage["metadata"], "name": None}}
    body = yaml.safe_dump_all([stage, broken])
    response = await post(client, body, YAML)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "metadata.name" and error["line"] > 1 and "None" not in response.json()["detail"]
    assert (await client.get("/v1/namespaces/kargo-demo/stages/uat")).status_code == 404
    bomb = await post(client, "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", YAML)
    assert bomb.status_code == 422 and "alias" in bomb.json()["errors"][0]["message"]
