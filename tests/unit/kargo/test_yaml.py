"""YAML documents read safely: multi-document streams with their lines, no aliases, bounded nesting."""

from __future__ import annotations

import json

import pytest
import yaml

from policy_server.errors import InvalidState
from policy_server.kargo import YamlError, parse_body, yaml_documents
from tests.conftest import kargo_fixtures_dir


def _as_yaml(*objects: dict) -> bytes:
    return yaml.safe_dump_all(objects, sort_keys=False).encode()


def test_kubectl_yaml_is_recorded_like_its_json():
    stage = json.loads((kargo_fixtures_dir() / "snapshot" / "stages" / "prod.json").read_text())
    promotion = next((kargo_fixtures_dir() / "snapshot" / "promotions").glob("prod.*.json"))
    body = _as_yaml(stage, json.loads(promotion.read_text()))
    from_yaml = parse_body(body, "application/yaml")
    from_json = parse_body(
        "\n".join(json.dumps(o) for o in (stage, json.loads(promotion.read_text()))).encode(), "application/x-ndjson"
    )
    assert [i.obj.raw for i in from_yaml] == [i.obj.raw for i in from_json]
    assert [i.line for i in from_yaml] == [1, body.decode().split("\n").index("---") + 2]


def test_timestamps_stay_rfc3339_text():
    ((_, value),) = yaml_documents(b"metadata:\n  creationTimestamp: 2026-08-12T10:31:30Z\n", 64)
    assert value["metadata"]["creationTimestamp"] in ("2026-08-12T10:31:30+00:00", "2026-08-12T10:31:30Z")


@pytest.mark.parametrize(
    ("body", "words", "line"),
    [
        (b"a: &x [1, 2]\nb: *x\n", "aliases", 2),
        (b"a:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 80)), "deeper", None),
        (b"a: [1, 2\nb: 3\n", "not valid YAML", None),
        (b"!!python/object:os.system {}\n", "not valid YAML", 1),
        (b"1: one\n", "string", 1),
    ],
)
def test_unsafe_or_malformed_yaml_is_a_located_problem(body, words, line):
    with pytest.raises(YamlError) as caught:
        list(yaml_documents(body, 64))
    assert words in caught.value.message
    if line is not None:
        assert caught.value.line == line


def test_an_invalid_document_names_its_line_and_stores_nothing():
    good = {"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
            "metadata": {"name": "s", "namespace": "n", "resourceVersion": "1"}}  # fmt: skip
    bad = {**good, "metadata": {**good["metadata"], "resourceVersion": "x1"}}
    body = _as_yaml(good, bad)
    with pytest.raises(InvalidState) as caught:
        parse_body(body, "application/yaml; charset=utf-8")
    error = caught.value.errors[0]
    assert error.field == "metadata.resourceVersion" and error.line and error.line > 1
    assert "None" not in str(caught.value)


@pytest.mark.parametrize("body", [b"null\n", b"# only a comment\n", b"---\n---\n", b"- a\n- b\n"])
def test_a_yaml_body_without_an_object_is_refused(body):
    with pytest.raises(InvalidState) as caught:
        parse_body(body, "application/yaml")
    assert caught.value.errors and "None" not in str(caught.value)
