"""Helpers for tests that go through the app's HTTP API to a real store."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from policy_server.store._rows import TABLES

NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}

PROD_P5 = "prod.01kztrb5rrszgtj1336jmp9ek5.0ccf689"
PROD_P6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"
PROD_P7 = "prod.01kztrf9sk2ppygyjnh3f2mnnz.10a9340"
PROD_P3 = "prod.01kzr7qggsbeqy9zc25rgqrtps.10a9340"
PROD_P8 = "prod.01kztrxfkyqgkv5qwxbvvxryff.10a9340"
AR_A = "prod.01kznna8856jzw8s7mv3fwekcb.c3ff505"
AR_E = "prod.01kztrcpjk2gpy8b8wxaq1g00v.1265247"


async def post(client: Any, body: bytes | str | dict | list, headers: dict[str, str] | None = None) -> Any:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    return await client.post("/v1/state", content=body, headers=headers or JSON)


async def settled(client: Any) -> None:
    """Wait until the verdicts the last recorded change asks for are computed (the precomputation's backlog is
    empty): what an evaluation counter sees is then the questions' own."""
    for _ in range(400):
        text = (await client.get("/metrics")).text
        if re.search(r"^policy_server_precompute_backlog 0\.0$", text, re.M):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("precomputation did not settle")


def watch_lines(fixtures_dir: Path) -> list[str]:
    return (fixtures_dir / "watch-prod-verification-failed.jsonl").read_text().splitlines()


async def post_snapshot(client: Any, fixtures_dir: Path) -> None:
    """Every snapshot file, one request each, as `kubectl get <kind> <name> -o json | curl` would."""
    for path in sorted((fixtures_dir / "snapshot").rglob("*.json")):
        response = await post(client, path.read_bytes())
        assert response.status_code == 200, response.text


async def stored_rows(database_url: str) -> dict[str, list[tuple]]:
    """Everything the store holds, tombstones included, for comparing end states."""
    engine = create_async_engine(database_url)
    out: dict[str, list[tuple]] = {}
    try:
        async with engine.connect() as conn:
            for kind, table in TABLES.items():
                rows = await conn.execute(
                    select(
                        table.c.namespace, table.c.name, table.c.resource_version, table.c.deleted, table.c.object
                    ).order_by(table.c.namespace, table.c.name)
                )
                out[kind.value] = [(r.namespace, r.name, r.resource_version, bool(r.deleted), r.object) for r in rows]
    finally:
        await engine.dispose()
    return out
