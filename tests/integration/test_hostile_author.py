"""A hostile policy author, on SQLite + regopy and on PostgreSQL + OPA: whatever they submit, every ordinary
decision comes out exactly as before, and every bad submission is a 4xx that changes nothing."""

from __future__ import annotations

import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from policy_server.settings import Settings
from tests.conftest import ADMIN_TOKEN, OpaProcess, app_client, fresh_postgres_database, opa_binary, require_postgres
from tests.integration.conftest import PROD_P6, PROD_P7, post
from tests.unit.engine.test_rego_check import corpus, expectation

UAT_HEAD = "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"
F3 = "0ccf68974cb0f38d1a4bc3717d4ee5c3da7ea5a9"
QUESTIONS: list[dict[str, Any]] = [
    {"promotion": {"namespace": "kargo-demo", "name": PROD_P6}},
    {"promotion": {"namespace": "kargo-demo", "name": PROD_P7}},
    {"promotion": {"namespace": "kargo-demo", "name": UAT_HEAD}},
    {"stage": {"namespace": "kargo-demo", "name": "prod"}, "freight": F3},
]
QUIET = 'package policies.quiet\n\nimport rego.v1\n\ndeny contains "never" if input.stage.name == "{name}"\n'


@dataclass
class Stack:
    """An app on one store and engine, an admin client, and the tokens of its authors."""

    client: Any
    author: dict[str, str]
    """An unlimited policy-author's headers."""
    demo_author: dict[str, str]
    """A policy-author limited to the namespace kargo-demo."""
    baseline: list[tuple]

    async def answers(self) -> list[tuple]:
        """What the ordinary questions get: allow, reason codes per policy, abort actions."""
        out = []
        for question in QUESTIONS:
            response = await self.client.post("/v1/decisions", json=question)
            assert response.status_code == 200, response.text
            body = response.json()
            reasons = sorted((r["policy"], r["code"]) for r in body["reasons"])
            actions = sorted(a["promotion"]["name"] for a in body["actions"])
            out.append((body["allow"], reasons, actions))
        return out

    async def assert_decisions_unchanged(self) -> None:
        assert await self.answers() == self.baseline
        ready = await self.client.get("/ready")
        assert ready.status_code == 200, ready.text


@pytest.fixture(params=["sqlite-regopy", pytest.param("postgres-opa", marks=pytest.mark.postgres)])
def stack_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    base = Settings(
        data_dir=str(tmp_path),
        auto_migrate=True,
        engine_workers=1,
        bootstrap_token=ADMIN_TOKEN,
        decision_cache_ms=0,  # every question is really evaluated
        authoring_rate_limit_per_s=0,
    )
    if request.param == "sqlite-regopy":
        yield replace(base, database_url=f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
        return
    opa = OpaProcess(opa_binary(), tmp_path / "opa.log")
    opa.start()
    try:
        for url in fresh_postgres_database(require_postgres()):
            yield replace(base, database_url=url, engine="opa", opa_url=opa.url, opa_binary=opa_binary())
    finally:
        opa.kill()


@pytest.fixture
async def stack(stack_settings: Settings, fixtures_dir: Path) -> AsyncIterator[Stack]:
    async with app_client(stack_settings) as client:
        tokens = {}
        for name, namespaces in (("author", None), ("demo-author", ["kargo-demo"])):
            body = {"name": name, "role": "policy-author", "namespaces": namespaces}
            created = await client.post("/v1/tokens", json=body)
            assert created.status_code in (200, 201), created.text
            tokens[name] = {"authorization": f"Bearer {created.json()['token']}"}
        await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
        stack = Stack(client, tokens["author"], tokens["demo-author"], [])
        stack.baseline = await stack.answers()
        assert stack.baseline[0][0] is False and stack.baseline[2][0] is True  # P6 held, the uat head allowed
        yield stack


def draft(source: str, **extra: Any) -> dict[str, Any]:
    return {"input": {"namespace": "kargo-demo", "stage": {"name": "prod"}}, "draft": {"source": source, **extra}}


async def test_drafts_failed_writes_and_rollbacks_never_take_decisions_down(stack):
    client = stack.client
    # 1. Many different drafts by a namespace-limited author (more than a worker keeps compiled).
    for n in range(12):
        response = await client.post("/v1/evaluate", json=draft(QUIET.format(name=f"d{n}")), headers=stack.demo_author)
        assert response.status_code == 200, response.text
        assert response.json()["allow"] is True
    await stack.assert_decisions_unchanged()

    # 2. Writes that compile but fail their tests: 422, nothing active.
    for n in range(6):
        failing = {"policy_test.rego": "package policies.quiet_test\n\nimport rego.v1\n\ntest_fails if false\n"}
        body = {"source": QUIET.format(name=f"w{n}"), "tests": failing}
        response = await client.put("/v1/policies/quiet", json=body, headers=stack.author)
        assert response.status_code == 422 and response.json()["code"] == "invalid_policy"
    assert (await client.get("/v1/policies/quiet")).status_code == 404
    await stack.assert_decisions_unchanged()

    # 3. Four edits of one policy, then a rollback to the first.
    for n in range(4):
        response = await client.put(
            "/v1/policies/quiet", json={"source": QUIET.format(name=f"e{n}")}, headers=stack.author
        )
        assert response.status_code == 200, response.text
        await stack.assert_decisions_unchanged()
    rolled = await client.post("/v1/policies/quiet/rollback", json={"revision": 1}, headers=stack.author)
    assert rolled.status_code == 200 and rolled.json()["active"]["number"] == 5
    await stack.assert_decisions_unchanged()


class _Listener(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"secret": "from the network"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    _Listener.hits = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


async def test_a_draft_or_a_policy_cannot_reach_the_network(stack, listener):
    sources = [
        'package policies.net\n\nimport rego.v1\n\ndeny contains msg if {{\n\tmsg := count({{"method": "get", '
        '"url": "{url}"}}) with count as http.send\n}}\n',
        'package policies.net\n\nimport rego.v1\n\ndeny contains msg if {{\n\tr := http.send({{"method": "get", '
        '"url": "{url}"}})\n\tmsg := r.raw_body\n}}\n',
        "package policies.net\n\nimport rego.v1\n\n_get(req) := count(req)\n\ndeny contains msg if {{\n\tmsg := "
        '_get({{"method": "get", "url": "{url}"}}) with count as http.send\n}}\n',
    ]
    for source in sources:
        text = source.format(url=listener)
        response = await stack.client.post("/v1/evaluate", json=draft(text), headers=stack.demo_author)
        assert response.status_code == 422, response.text
        assert "lint_forbidden_builtin" in {e["code"] for e in response.json()["errors"]}
        put = await stack.client.put("/v1/policies/net", json={"source": text}, headers=stack.author)
        assert put.status_code == 422
    assert _Listener.hits == 0
    await stack.assert_decisions_unchanged()


async def test_parameters_no_engine_can_carry_are_refused_and_cannot_break_other_policies(stack):
    client = stack.client
    huge = {"source": QUIET.format(name="x"), "mode": "dryrun", "parameters": {"limit": 2**70}}
    response = await client.put("/v1/policies/quiet", json=huge, headers=stack.author)
    assert response.status_code == 422
    (error,) = [e for e in response.json()["errors"] if e["code"] == "invalid_parameters"]
    assert "64 bits" in error["message"]
    ok = await client.put("/v1/policies/quiet", json={**huge, "parameters": {"limit": 3}}, headers=stack.author)
    assert ok.status_code == 200
    patched = await client.patch("/v1/policies/quiet", json={"parameters": {"limit": 2**70}}, headers=stack.author)
    assert patched.status_code == 422
    assert (await client.get("/v1/policies/quiet")).json()["active"]["parameters"] == {"limit": 3}
    await stack.assert_decisions_unchanged()


async def test_invalid_or_dangerous_rego_is_refused_with_its_place_and_never_becomes_active(stack):
    """Every policy of the corpus, as a revision and as a draft (one app for all: they change nothing)."""
    for path in corpus("invalid"):
        code, _ = expectation(path)
        source = path.read_text()
        response = await stack.client.put("/v1/policies/hostile", json={"source": source}, headers=stack.author)
        assert response.status_code == 422, (path.name, response.text)
        errors = response.json()["errors"]
        assert code in {e["code"] for e in errors}, (path.name, errors)
        for error in errors:
            assert error["file"] == "hostile/policy.rego" and error["line"] >= 1 and error["column"] >= 1, error
        assert (await stack.client.get("/v1/policies/hostile")).status_code == 404
        drafted = await stack.client.post("/v1/evaluate", json=draft(source), headers=stack.demo_author)
        assert drafted.status_code == 422, path.name
    await stack.assert_decisions_unchanged()


async def test_reserved_and_foreign_packages_are_refused(stack):
    for package, code in (
        ("policy_server.entry.e1", "reserved_package"),
        ("policy_server", "reserved_package"),
        ("system", "reserved_package"),
        ("system.authz", "reserved_package"),
        ("policies.admission", "package_in_use"),
        ("policies", "package_in_use"),
    ):
        source = f'package {package}\n\nimport rego.v1\n\ndeny contains "x" if input.x\n'
        response = await stack.client.put("/v1/policies/sneaky", json={"source": source}, headers=stack.author)
        assert response.status_code == 422, package
        assert code in {e["code"] for e in response.json()["errors"]}, (package, response.json()["errors"])
    await stack.assert_decisions_unchanged()


async def test_a_helper_named_like_another_policys_with_other_arguments_is_refused(stack):
    # regopy crashes evaluating a bundle where two policies define one function name with different arities:
    # admission defines `_running(inp)`; this draft's `_running(a, b)` would take every decision down.
    source = (
        'package team.clash\n\nimport rego.v1\n\n_running(a, b) := a + b\n\ndeny contains "x" if _running(1, 2) == 4\n'
    )
    response = await stack.client.put("/v1/policies/clash", json={"source": source}, headers=stack.author)
    assert response.status_code == 422, response.text
    (error,) = [e for e in response.json()["errors"] if e["code"] == "lint_function_clash"]
    assert "_running" in error["message"] and "admission" in error["message"]
    assert error["line"] == 5
    # Under another name it is accepted.
    renamed = source.replace("_running", "_sum")
    response = await stack.client.put("/v1/policies/clash", json={"source": renamed}, headers=stack.author)
    assert response.status_code in (200, 201), response.text
    await stack.client.delete("/v1/policies/clash", headers=stack.author)
    await stack.assert_decisions_unchanged()


async def test_malformed_input_is_a_4xx_and_changes_nothing(stack):
    client = stack.client
    before = (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json()
    deep = "[" * 1000 + "]" * 1000
    for method, path, body in (
        ("POST", "/v1/state", f'{{"kind": "Stage", "x": {deep}}}'),
        ("POST", "/v1/decisions", f'{{"promotion": {deep}}}'),
        ("POST", "/v1/evaluate", f'{{"input": {{"a": {deep}}}}}'),
        ("PUT", "/v1/policies/x", f'{{"source": "x", "parameters": {{"a": {deep}}}}}'),
        ("PATCH", "/v1/policies/admission", f'{{"parameters": {{"a": {deep}}}}}'),
        ("POST", "/v1/tokens", f'{{"name": {deep}}}'),
    ):
        response = await client.request(method, path, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422 and response.json()["limit"] == "max_json_depth", (path, response.text)
    stage = dict(before["stage"]["object"]) if "object" in before.get("stage", {}) else None
    for rv in ("²", "１２", "12a", "-3"):
        obj = _stage_object(rv=rv)
        response = await client.post("/v1/state", json=obj)
        assert response.status_code == 422, rv
        assert response.json()["errors"][0]["field"] == "metadata.resourceVersion"
    for when in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        response = await client.post("/v1/state", json=_stage_object(created=when))
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "metadata.creationTimestamp"
        for name in ("since", "until"):
            listed = await client.get("/v1/decisions", params={name: when}, headers={"accept": "application/x-ndjson"})
            assert listed.status_code == 422 and listed.json()["errors"][0]["field"] == name
    assert (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json() == before
    assert (
        stage is None or stage == (await client.get("/v1/namespaces/kargo-demo/stages/prod")).json()["stage"]["object"]
    )
    await stack.assert_decisions_unchanged()


def _stage_object(*, rv: str = "99999", created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "prod", "namespace": "kargo-demo", "resourceVersion": rv, "uid": "u-1",
                     "creationTimestamp": created},
        "spec": {},
    }  # fmt: skip


async def test_authoring_is_rate_limited_per_token(stack_settings, fixtures_dir):
    settings = replace(stack_settings, authoring_rate_limit_per_s=0.5, authoring_rate_limit_burst=2)
    async with app_client(settings) as client:
        statuses = []
        for _ in range(4):
            response = await client.post("/v1/evaluate", json=draft(QUIET.format(name="r")))
            statuses.append(response.status_code)
        assert statuses[:2] == [200, 200] and 429 in statuses[2:]
        # Decisions have their own bucket.
        await post(client, (fixtures_dir / "list-kargo-demo.json").read_bytes())
        assert (await client.post("/v1/decisions", json=QUESTIONS[2])).status_code == 200
