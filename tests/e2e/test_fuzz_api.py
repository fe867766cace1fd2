"""schemathesis against the served OpenAPI document, with a valid admin token: no 5xx, answers as documented."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.conftest import ADMIN, ADMIN_TOKEN, ROOT

# 422 is an expected answer to schema-valid data: the schema cannot say that Rego must compile or that an object
# must be Kubernetes-shaped, and the service checks both (schema-*invalid* data must still be rejected).
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 422, 429]}}}
)
schema = schemathesis.openapi.from_path(str(ROOT / "openapi" / "openapi.json"), config=CONFIG)


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value):  # type: ignore[no-untyped-def]
    """Bodies of the NDJSON ingestion form: text as is, anything else as one JSON line."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, fixtures_dir):
    import httpx

    from tests.e2e.conftest import Server

    folder = tmp_path_factory.mktemp("fuzz")
    server = Server(
        {
            "POLICY_SERVER_DATA_DIR": str(folder / "data"),
            "POLICY_SERVER_ENGINE_WORKERS": "1",
            "POLICY_SERVER_RATE_LIMIT_PER_S": "0",
            "POLICY_SERVER_AUTHORING_RATE_LIMIT_PER_S": "0",
        },
        folder / "server.log",
    )
    server.start()
    httpx.post(f"{server.url}/v1/state", headers=ADMIN, content=(fixtures_dir / "list-kargo-demo.json").read_bytes())
    yield server
    server.stop()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_as_documented(case, fuzz_server):
    # schemathesis's full set of checks: no 5xx; status, content type, headers and body as documented; data the
    # schema forbids is rejected and data it allows is accepted; a missing token is refused; unsupported
    # methods are 405; a deleted resource is gone.
    case.call_and_validate(base_url=fuzz_server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
