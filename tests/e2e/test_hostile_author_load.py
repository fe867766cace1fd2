"""A hostile author against a real server process: slow drafts neither delay decisions nor pile up, and the
CLI refuses what the API refuses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    ROOT,
    OpaProcess,
    fresh_postgres_database,
    kargo_fixtures_dir,
    opa_binary,
    require_postgres,
)
from tests.e2e.conftest import cli
from tests.unit.engine.test_rego_check import corpus

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SLOW_DRAFT = (
    'package policies.slow\n\nimport rego.v1\n\ndeny contains "n" if {\n'
    "\tsome i in numbers.range(1, 1000000000)\n\ti < 0\n}\n"
)
QUESTION = {"promotion": {"namespace": "kargo-demo", "name": "uat.01kztre7ng6jgszv7zxzzr314s.0ccf689"}}


@pytest.fixture(params=["sqlite-regopy", pytest.param("postgres-opa", marks=pytest.mark.postgres)])
def stack_env(request, tmp_path):
    """SQLite with the embedded engine, or PostgreSQL with a real OPA server."""
    env = {"POLICY_SERVER_AUTHORING_RATE_LIMIT_PER_S": "0", "POLICY_SERVER_DECISION_CACHE_MS": "0"}
    if request.param == "sqlite-regopy":
        yield {**env, "POLICY_SERVER_DATA_DIR": str(tmp_path / "data")}
        return
    opa = OpaProcess(opa_binary(), tmp_path / "opa.log")
    opa.start()
    try:
        for url in fresh_postgres_database(require_postgres()):
            database = {"POLICY_SERVER_DATABASE_URL": url}
            assert cli("db", "upgrade", env=database).returncode == 0
            yield {**env, **database, "POLICY_SERVER_ENGINE": "opa", "POLICY_SERVER_OPA_URL": opa.url}
    finally:
        opa.kill()


async def test_slow_drafts_neither_delay_decisions_nor_pile_up(server_factory, stack_env):
    server = server_factory(stack_env)
    body = (kargo_fixtures_dir() / "list-kargo-demo.json").read_bytes()
    draft = {"input": {"namespace": "kargo-demo"}, "draft": {"source": SLOW_DRAFT}}
    async with httpx.AsyncClient(base_url=server.url, headers=ADMIN, timeout=60) as client:
        assert (await client.post("/v1/state", content=body, headers={"content-type": "application/json"})).is_success
        before = (await client.post("/v1/decisions", json=QUESTION)).json()
        assert before["allow"] is True
        drafts = [asyncio.create_task(client.post("/v1/evaluate", json=draft)) for _ in range(8)]
        await asyncio.sleep(0.3)
        during = [(await client.post("/v1/decisions", json=QUESTION)).json() for _ in range(5)]
        still_running = sum(not d.done() for d in drafts)
        answers = await asyncio.gather(*drafts)
    # Decisions were answered, the same as before, while drafts were still running.
    assert still_running > 0
    assert all(d["allow"] is True and d["reasons"] == [] for d in during)
    statuses = [a.status_code for a in answers]
    assert 429 in statuses and 200 in statuses, statuses  # one worker + a queue of 4; the rest turned away
    busy = next(a for a in answers if a.status_code == 429)
    assert busy.json()["code"] == "authoring_busy" and int(busy.headers["retry-after"]) >= 1
    for answer in answers:
        if answer.status_code == 200:
            assert answer.json()["allow"] is False  # a runaway draft fails closed at its own deadline
            assert {r["code"] for r in answer.json()["reasons"]} & {"evaluation_timeout", "evaluation_memory_exceeded"}


def test_policies_check_refuses_every_invalid_policy_with_its_place():
    files = corpus("invalid")
    result = cli("policies", "check", *map(str, files))
    out = result.stdout.decode()
    assert result.returncode == 1, out
    for path in files:
        assert f"{path}:" in out and any(
            line.startswith(f"{path}:") and line.split(":")[1].isdigit() and line.split(":")[2].isdigit()
            for line in out.splitlines()
        ), path.name
    valid = cli("policies", "check", *map(str, corpus("valid")))
    assert valid.returncode == 0 and "0 problem(s)" in valid.stdout.decode(), valid.stdout.decode()


def test_policies_test_fails_on_a_policy_that_does_not_compile(tmp_path: Path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "policy.rego").write_text('package policies.broken\n\nimport rego.v1\n\ndeny contains "x" if {\n')
    (folder / "policy_test.rego").write_text("package policies.broken_test\n\nimport rego.v1\n\ntest_x if true\n")
    result = cli("policies", "test", str(folder))
    out = result.stdout.decode()
    assert result.returncode == 1 and "rego_parse_error" in out and "PASS: 0/0" not in out, out
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    (unsafe / "policy.rego").write_text((ROOT / "tests/data/rego/invalid/unsafe-var.rego").read_text())
    result = cli("policies", "test", str(unsafe))
    assert result.returncode == 1 and "rego_unsafe_var_error" in result.stdout.decode()
