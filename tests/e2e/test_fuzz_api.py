"""schemathesis against the served OpenAPI document, with a valid admin token: no 5xx, answers as documented."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.conftest import ADMIN, ROOT

schema = schemathesis.openapi.from_path(str(ROOT / "openapi" / "openapi.json"))


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
    # No 5xx, and every answer is documented: status, content type, headers and body schema. Authentication
    # without a token is the authorization matrix's job (tests/integration/test_authorization.py).
    case.call_and_validate(
        base_url=fuzz_server.url,
        headers=ADMIN,
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_headers_conformance,
            checks.response_schema_conformance,
        ],
    )
