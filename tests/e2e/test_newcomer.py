"""What a newcomer does: run the server, post the fixtures with a real HTTP client, read the state back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN
from tests.e2e.conftest import cli
from tests.integration.conftest import AR_E, PROD_P6, PROD_P7, PROD_P8


def _walk_through(server_url: str, fixtures_dir, env: dict[str, str]) -> None:
    with httpx.Client(base_url=server_url, timeout=30, headers=ADMIN) as http:
        response = http.post(
            "/v1/state",
            content=(fixtures_dir / "list-kargo-demo.json").read_bytes(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200 and response.json()["applied"] == 25

        prod = http.get("/v1/namespaces/kargo-demo/stages/prod").json()
        assert [p["name"] for p in prod["queue"]] == [PROD_P6, PROD_P7]
        assert prod["current_verification"]["name"] == AR_E

        # `kubectl get -w -o json` prints indented objects one after another: the CLI reads that too.
        events = [json.loads(line) for line in (fixtures_dir / "watch-prod-verification-failed.jsonl").open()]
        indented = "\n".join(json.dumps(e, indent=4) for e in events).encode()
        result = cli("ingest", "--url", server_url, "-", env=env, stdin=indented)
        assert result.returncode == 0, result.stderr.decode()
        assert json.loads(result.stdout)["deleted"] == 1

        p8 = http.get(f"/v1/namespaces/kargo-demo/promotions/{PROD_P8}").json()
        assert p8["phase"] == "Succeeded"
        assert http.get("/docs/").status_code == 200
        assert http.get("/health").json()["status"] == "ok"


def test_embedded_sqlite_server_end_to_end(server_factory, fixtures_dir, tmp_path):
    env = {"POLICY_SERVER_DATA_DIR": str(tmp_path / "data")}
    server = server_factory(env)
    _walk_through(server.url, fixtures_dir, env)
    assert (tmp_path / "data" / "policy-server.db").is_file()
    decision = httpx.post(
        f"{server.url}/v1/decisions",
        json={"promotion": {"namespace": "kargo-demo", "name": PROD_P6}},
        headers=ADMIN,
        timeout=30,
    ).json()
    # Logs are JSON lines; the decision's line carries its id, and no input document.
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
    about = [line for line in lines if line.get("decision_id") == decision["id"]]
    assert about and about[0]["logger"] == "policy_server.decisions"
    assert "freightHistory" not in server.log.read_text()


@pytest.mark.postgres
def test_postgres_server_end_to_end(fresh_postgres_url, server_factory, fixtures_dir):
    env = {"POLICY_SERVER_DATABASE_URL": fresh_postgres_url}
    not_migrated = cli("db", "current", env=env)
    assert b"(empty)" in not_migrated.stdout
    upgraded = cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr.decode()
    server = server_factory(env)
    _walk_through(server.url, fixtures_dir, env)


def test_cli_ingest_writes_the_configured_database(fixtures_dir, tmp_path):
    env = {"POLICY_SERVER_DATA_DIR": str(tmp_path)}
    first = cli("ingest", str(fixtures_dir / "list-kargo-demo.json"), env=env)
    assert first.returncode == 0, first.stderr.decode()
    assert json.loads(first.stdout)["applied"] == 25
    again = cli("ingest", str(fixtures_dir / "list-kargo-demo.json"), env=env)
    assert json.loads(again.stdout)["unchanged"] == 25

    stream = cli("ingest", "--batch", "5", str(fixtures_dir / "watch-prod-verification-failed.jsonl"), env=env)
    assert json.loads(stream.stdout) == {
        "items": 22,
        "applied": 16,
        "unchanged": 5,
        "stale": 0,
        "deleted": 1,
        "skipped": 0,
    }


def test_cli_ingest_posts_batches_a_few_at_a_time_and_ends_in_the_same_state(server_factory, fixtures_dir, tmp_path):
    """Batches sent side by side may land in any order: what is recorded is the same as in one transaction."""
    stream = fixtures_dir / "watch-prod-verification-failed.jsonl"
    states = []
    for n, batch in enumerate(("0", "2")):
        env = {"POLICY_SERVER_DATA_DIR": str(tmp_path / f"data-{n}")}
        server = server_factory(env)
        listed = cli("ingest", "--url", server.url, str(fixtures_dir / "list-kargo-demo.json"), env=env)
        assert listed.returncode == 0, listed.stderr.decode()
        result = cli("ingest", "--url", server.url, "--batch", batch, str(stream), env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert json.loads(result.stdout)["items"] == 22
        with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as http:
            stages = {s: http.get(f"/v1/namespaces/kargo-demo/stages/{s}").json() for s in ("test", "uat", "prod")}
            p8 = http.get(f"/v1/namespaces/kargo-demo/promotions/{PROD_P8}").json()
        states.append((stages, p8))
    assert states[0] == states[1]
    assert states[1][1]["phase"] == "Succeeded"


def test_cli_ingest_rejects_bad_input_and_stores_nothing(tmp_path):
    env = {"POLICY_SERVER_DATA_DIR": str(tmp_path)}
    bad = b'{"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage", "metadata": {"name": "x"}}'
    result = cli("ingest", "-", env=env, stdin=bad)
    assert result.returncode == 1
    assert b"metadata.namespace" in result.stderr
    assert result.stdout == b""
    assert not (tmp_path / "policy-server.db").exists()


def test_apply_actions_turns_abort_actions_into_kubectl_patches(server_factory, fixtures_dir, tmp_path):
    env = {"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_ENGINE_WORKERS": "1"}
    server = server_factory(env)
    lines = (fixtures_dir / "watch-prod-verification-failed.jsonl").read_text().splitlines()
    with httpx.Client(base_url=server.url, timeout=30, headers=ADMIN) as http:
        http.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes()).raise_for_status()
        http.post(
            "/v1/state", content="\n".join(lines[:7]), headers={"content-type": "application/x-ndjson"}
        ).raise_for_status()
        decision = http.post("/v1/decisions", json={"promotion": {"namespace": "kargo-demo", "name": PROD_P6}}).json()
    result = cli("apply-actions", "--url", server.url, "--dry-run", decision["id"], env=env)
    assert result.returncode == 0, result.stderr.decode()
    commands = result.stdout.decode().splitlines()
    assert len(commands) == 2
    assert commands[0] == (
        "kubectl patch promotions.kargo.akuity.io " + PROD_P6 + " --namespace kargo-demo --type merge "
        '--patch \'{"metadata":{"annotations":{"kargo.akuity.io/abort":"{\\"action\\":\\"terminate\\"}"}}}\''
    )
    assert PROD_P7 in commands[1]
    piped = cli("apply-actions", "--dry-run", "-", env=env, stdin=json.dumps(decision).encode())
    assert piped.stdout.decode().splitlines() == commands


def _rego_workers(pid: int) -> int:
    """Rego worker processes below ``pid``: forks of a zygote (which carry its command line), or started alone."""
    count, stack = 0, [(pid, "")]
    while stack:
        current, command = stack.pop()
        for task in Path(f"/proc/{current}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                line = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                forked = "import zygote" in line and "import zygote" in command
                count += forked or "engine._worker import main" in line
                stack.append((child, line))
    return count


def test_several_worker_processes_share_the_store_and_the_metrics(server_factory, fixtures_dir, tmp_path):
    import asyncio
    import os

    temp = tmp_path / "temp"
    temp.mkdir()
    env = {"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "TMPDIR": str(temp)}
    server = server_factory(env, "--workers", "2")
    # The cores are shared out: about one Rego worker per core in all, not one per core in each process.
    expected = 2 * max(1, min(os.cpu_count() or 1, 4) // 2)
    deadline = time.monotonic() + 20  # the second process may still be starting its workers
    while (found := _rego_workers(server.process.pid)) < expected:
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    time.sleep(0.5)
    assert _rego_workers(server.process.pid) == expected
    httpx.post(
        f"{server.url}/v1/state",
        headers=ADMIN,
        content=(fixtures_dir / "list-kargo-demo.json").read_bytes(),
        timeout=30,
    )

    async def ask_many() -> list[dict]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=ADMIN) as client:
            body = {"promotion": {"namespace": "kargo-demo", "name": PROD_P6}}
            responses = await asyncio.gather(*(client.post("/v1/decisions", json=body) for _ in range(20)))
            return [r.json() for r in responses]

    answers = asyncio.run(ask_many())
    assert all(a["allow"] is False for a in answers)
    log = server.log.read_text()
    assert log.count("Started server process") == 2
    pids = {json.loads(line)["message"] for line in log.splitlines() if "Started server process" in line}
    assert len(pids) == 2
    # Identical answers fold into one logged decision whichever process answered.
    assert len({a["id"] for a in answers}) == 1
    logged = httpx.get(f"{server.url}/v1/decisions/{answers[0]['id']}", headers=ADMIN, timeout=30).json()
    assert logged["repeat_count"] == 20
    metrics = httpx.get(f"{server.url}/metrics", headers=ADMIN, timeout=30).text
    assert 'policy_server_decisions_total{outcome="deny"} 20.0' in metrics
    assert [p.name for p in temp.iterdir()] != []  # the workers' shared metrics directory
    server.stop()
    assert server.process.returncode == 0
    assert list(temp.iterdir()) == []  # removed when the server stops


def test_first_start_prints_an_admin_token_and_the_cli_manages_tokens(server_factory, tmp_path):
    import re

    env = {"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_BOOTSTRAP_TOKEN": ""}
    server = server_factory(env)
    printed = re.search(r"^\s+(pst_\S+)$", server.log.read_text(), re.M)
    assert printed, server.log.read_text()
    admin = {"authorization": f"Bearer {printed.group(1)}"}
    assert httpx.get(f"{server.url}/v1/policies", timeout=30).status_code == 401
    assert httpx.get(f"{server.url}/v1/policies", headers=admin, timeout=30).status_code == 200

    created = cli("tokens", "create", "--name", "demo-reader", "--role", "reader", "--namespace", "kargo-demo", env=env)
    assert created.returncode == 0, created.stderr.decode()
    reader = {"authorization": f"Bearer {created.stdout.decode().strip()}"}
    assert httpx.get(f"{server.url}/v1/namespaces/kargo-demo/stages", headers=reader, timeout=30).status_code == 200
    assert httpx.get(f"{server.url}/v1/namespaces/other/stages", headers=reader, timeout=30).status_code == 403
    # The CLI says how to pass a token instead of a bare 401.
    refused = cli("ingest", "--url", server.url, "-", env={**env, "POLICY_SERVER_TOKEN": ""}, stdin=b"{}")
    assert refused.returncode == 1 and "--token or POLICY_SERVER_TOKEN" in refused.stderr.decode()
    assert "Traceback" not in refused.stderr.decode()
    listed = cli("tokens", "list", env=env).stdout.decode()
    assert "demo-reader\treader\tkargo-demo\tactive" in listed and "bootstrap-admin\tadmin\t*" in listed
    assert "pst_" not in listed
    assert cli("tokens", "revoke", "demo-reader", env=env).returncode == 0
    # A restart finds tokens and prints none, but says how to make a new admin token.
    again = server_factory(env)
    assert "pst_" not in again.log.read_text()
    assert "policy-server tokens create --name <name> --role admin" in again.log.read_text()


def test_auth_disabled_lets_anyone_in_and_says_so_loudly(server_factory, tmp_path):
    server = server_factory({"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_AUTH": "disabled"})
    assert httpx.get(f"{server.url}/v1/policies", timeout=30).status_code == 200
    assert "AUTHENTICATION IS DISABLED" in server.log.read_text()
