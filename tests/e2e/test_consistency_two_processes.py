"""Kept inputs and verdicts never outlive an acknowledged change: two server processes on one store, each
answering from what it keeps, see a change recorded through the other at once (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time

import httpx

from tests.conftest import ADMIN
from tests.e2e.conftest import cli

P6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"
QUESTION = {"promotion": {"namespace": "kargo-demo", "name": P6}}


def _shared_store(store_env: dict[str, str]) -> dict[str, str]:
    """Settings of servers sharing one migrated store."""
    env = {**store_env, "POLICY_SERVER_ENGINE_WORKERS": "1"}
    if "POLICY_SERVER_DATABASE_URL" not in env:
        assert cli("db", "upgrade", env=env).returncode == 0
    return env


def _client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers=ADMIN)


def test_a_change_through_one_process_is_answered_by_the_other_at_once(store_env, server_factory, fixtures_dir):
    env = _shared_store(store_env)
    servers = [server_factory(env), server_factory(env)]
    demo = json.loads((fixtures_dir / "list-kargo-demo.json").read_text())
    p6 = next(i for i in demo["items"] if i["metadata"]["name"] == P6)
    with httpx.Client(base_url=servers[0].url, timeout=60, headers=ADMIN) as http:
        http.post("/v1/state", json=demo).raise_for_status()

    async def ask(client: httpx.AsyncClient) -> set[str]:
        response = await client.post("/v1/decisions", json=QUESTION)
        response.raise_for_status()
        return {r["code"] for r in response.json()["reasons"]}

    async def scenario() -> None:
        clients = [httpx.AsyncClient(base_url=s.url, timeout=60, headers=ADMIN) for s in servers]
        try:
            recorded = {"verification_in_progress"}
            assert all(recorded <= codes for codes in await asyncio.gather(*(ask(c) for c in clients)))
            version = 900_000
            for round_ in range(8):
                # Both processes keep P6's input and verdict: polled answers come from what they keep.
                for _ in range(10):
                    answers = await asyncio.gather(*(ask(c) for c in clients))
                    assert all(recorded <= codes for codes in answers)
                    assert all(
                        ("promotion_unknown" in codes) == (recorded == {"promotion_unknown"}) for codes in answers
                    )
                version += 1
                changed = copy.deepcopy(p6)
                changed["metadata"]["resourceVersion"] = str(version)
                deleting = recorded != {"promotion_unknown"}
                event = {"type": "DELETED" if deleting else "ADDED", "object": changed}
                writer = clients[round_ % 2]
                (await writer.post("/v1/state", json=event)).raise_for_status()
                recorded = {"promotion_unknown"} if deleting else {"verification_in_progress"}
                # Asked the moment the change is acknowledged, of both processes (the other one first).
                for client in (clients[(round_ + 1) % 2], writer):
                    codes = await ask(client)
                    assert recorded <= codes, (round_, client.base_url, codes)
                    assert ("promotion_unknown" in codes) == deleting, (round_, client.base_url, codes)
        finally:
            for client in clients:
                await client.aclose()

    asyncio.run(scenario())


def test_a_policy_change_through_one_process_is_answered_by_the_other_at_once(store_env, server_factory, fixtures_dir):
    env = _shared_store(store_env)
    first, second = server_factory(env), server_factory(env)
    with _client(first.url) as a, _client(second.url) as b:
        a.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes()).raise_for_status()

        def codes(client: httpx.Client) -> set[str]:
            response = client.post("/v1/decisions", json=QUESTION)
            response.raise_for_status()
            return {r["code"] for r in response.json()["reasons"]}

        for _ in range(5):
            assert "verification_in_progress" in codes(b)  # kept by the second process
        a.delete("/v1/policies/block-while-verifying").raise_for_status()
        assert "verification_in_progress" not in codes(b)  # no refresh interval to wait for
        a.post("/v1/policies/block-while-verifying/restore").raise_for_status()
        assert "verification_in_progress" in codes(b)


def test_a_verdict_computed_by_one_process_answers_the_other(store_env, server_factory, fixtures_dir):
    env = _shared_store(store_env)
    first, second = server_factory(env), server_factory(env)
    with _client(first.url) as a, _client(second.url) as b:
        a.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes()).raise_for_status()
        for _ in range(200):  # the first process computes the verdicts of the Stages that changed
            if re.search(r"^policy_server_precompute_backlog 0\.0$", a.get("/metrics").text, re.M):
                break
            time.sleep(0.05)
        response = b.post("/v1/decisions", json=QUESTION)
        response.raise_for_status()
        assert "verification_in_progress" in {r["code"] for r in response.json()["reasons"]}
        metric = r'^policy_server_precomputed_verdicts_total\{result="used"\} ([\d.]+)$'
        used = re.search(metric, b.get("/metrics").text, re.M)
        assert used is not None and float(used.group(1)) == 1.0  # answered without reading or evaluating
