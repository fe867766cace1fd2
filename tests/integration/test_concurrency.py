"""Many ingestion requests at once through the app: every acknowledged object is stored, the newest version wins.

The in-process test client answers one request at a time, so this checks the bookkeeping; the same load
against a real server process, truly concurrent, is in tests/e2e/test_concurrency_real.py.
"""

from __future__ import annotations

import asyncio
import copy
import json

from tests.conftest import load
from tests.integration.conftest import NDJSON, PROD_P6, post, stored_rows


async def test_fifty_concurrent_requests_lose_no_acknowledged_object(client, fixtures_dir, database_url):
    template = load(fixtures_dir / "snapshot" / "promotions" / f"{PROD_P6}.json")
    shared_versions = list(range(2000, 2050))

    def body(i: int) -> bytes:
        lines = []
        for j in range(4):  # four objects of its own per request
            obj = copy.deepcopy(template)
            obj["metadata"]["name"] = f"prod.01kztrdxmgg3c76w16pjvk{i:02d}{j}.759376c"[:39]
            obj["metadata"]["resourceVersion"] = str(1000 + i)
            lines.append(json.dumps({"type": "ADDED", "object": obj}))
        shared = copy.deepcopy(template)  # and one object every request updates
        shared["metadata"]["resourceVersion"] = str(shared_versions[i])
        lines.append(json.dumps({"type": "MODIFIED", "object": shared}))
        return "\n".join(lines).encode()

    responses = await asyncio.gather(*(post(client, body(i), NDJSON) for i in range(50)))
    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses if r.status_code != 200]
    acknowledged = sum(r.json()["applied"] for r in responses)

    rows = (await stored_rows(database_url))["Promotion"]
    names = {name for (_, name, _, _, _) in rows}
    expected = {f"prod.01kztrdxmgg3c76w16pjvk{i:02d}{j}.759376c"[:39] for i in range(50) for j in range(4)}
    assert expected | {PROD_P6} == names
    shared_rv = next(rv for (_, name, rv, _, _) in rows if name == PROD_P6)
    assert shared_rv == str(max(shared_versions))
    # Each request applied its four objects; the shared one was applied only when it was the newest so far.
    assert 200 < acknowledged <= 250
