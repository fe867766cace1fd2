"""Capture a real answer of every operation on the demo project: the examples of the API docs' 200/201 responses.

Run ``make examples`` (``python -m tests.support.capture_examples``) after an API change: it starts the app in
process on an empty SQLite store, records ``examples/kargo-demo``, makes the decisions an on-call person would
look at, changes a policy and a token, and writes what each operation answered to
``policy_server/api/examples/responses.json`` ({operationId: {status: {media type: example}}}), which the app
puts into its OpenAPI document. ``tests/integration/test_openapi.py`` checks that every success response has one
and that each still matches its schema.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "kargo-demo"
OUTPUT = ROOT / "policy_server" / "api" / "examples" / "responses.json"
TOKEN = "pst_examples-admin-token"
P6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"


async def capture() -> dict[str, dict[str, dict[str, Any]]]:
    """Every operation's answer on the demo project, keyed by operation id, status and media type."""
    from litestar.testing import AsyncTestClient

    from policy_server.app import create_app
    from policy_server.settings import Settings

    examples: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=data, auto_migrate=True, engine_workers=1, bootstrap_token=TOKEN)
        async with AsyncTestClient(create_app(settings)) as client:
            client.headers["authorization"] = f"Bearer {TOKEN}"

            async def call(operation: str, method: str, path: str, **kwargs: Any) -> Any:
                response = await client.request(method, path, **kwargs)
                assert response.status_code in (200, 201), (operation, response.status_code, response.text)
                media_type = response.headers["content-type"].split(";")[0]
                if media_type == "application/json":
                    body: Any = response.json()
                else:
                    body = response.text
                examples.setdefault(operation, {})[str(response.status_code)] = {media_type: body}
                return body

            stream = (DEMO / "watch-prod-verification-failed.jsonl").read_text().splitlines()
            await call("GetHealth", "GET", "/health")
            await call("GetReadiness", "GET", "/ready")
            await call("IngestState", "POST", "/v1/state", content=(DEMO / "list-kargo-demo.json").read_bytes())
            await call("GetStateObject", "GET", f"/v1/state/promotions/kargo-demo/{P6}")
            await call("ListStateObjects", "GET", "/v1/state/stages/kargo-demo")
            await call("ListNamespaces", "GET", "/v1/namespaces")
            await call("ListStages", "GET", "/v1/namespaces/kargo-demo/stages")
            await call("GetStage", "GET", "/v1/namespaces/kargo-demo/stages/prod")
            await call("GetPromotion", "GET", f"/v1/namespaces/kargo-demo/promotions/{P6}")

            promotion = json.loads((DEMO / "snapshot" / "promotions" / f"{P6}.json").read_text())
            promotion["metadata"] = {"name": "prod.01kzv1n2xq8c3d7e9f0g1h2j3k.759376c", "namespace": "kargo-demo"}
            promotion.pop("status", None)
            review = {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                    "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Promotion"},
                    "operation": "CREATE",
                    "namespace": "kargo-demo",
                    "object": promotion,
                    "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
                    "dryRun": False,
                },
            }
            await call("ReviewPromotion", "POST", "/v1/admission/promotions", json=review)
            ask = {"promotion": {"namespace": "kargo-demo", "name": P6}}
            await client.post("/v1/decisions", json=ask)  # verification still running: denied, no action
            await client.post(
                "/v1/state", content="\n".join(stream[:7]), headers={"content-type": "application/x-ndjson"}
            )
            failed = await call("Decide", "POST", "/v1/decisions", json=ask)  # it failed: abort the queue
            await call("ListDecisions", "GET", "/v1/decisions", params={"namespace": "kargo-demo", "stage": "prod"})
            export = await client.get("/v1/decisions", params={"limit": 1}, headers={"accept": "application/x-ndjson"})
            examples["ListDecisions"]["200"]["application/x-ndjson"] = export.text.splitlines()[0] + "\n"
            logged = await call("GetDecision", "GET", f"/v1/decisions/{failed['id']}")
            await call("GetDecisionTest", "GET", f"/v1/decisions/{failed['id']}/test")
            await call("GetDecisionInputSchema", "GET", "/v1/schemas/decision-input")
            await call(
                "Evaluate", "POST", "/v1/evaluate", json={"input": logged["input"], "policy": "cancel-queue-on-failure"}
            )

            await call("ListPolicies", "GET", "/v1/policies")
            policy = await call("GetPolicy", "GET", "/v1/policies/block-while-verifying")
            await call("TestPolicy", "POST", "/v1/policies/block-while-verifying/test")
            active = policy["active"]
            write = {
                "source": active["source"],
                "tests": active["tests"],
                "title": active["title"],
                "description": active["description"] + " Reviewed by the platform team.",
                "mode": active["mode"],
                "scope": active["scope"],
                "parameters": active["parameters"],
            }
            # What a draft that no longer holds on a running verification would have changed.
            lenient = active["source"].replace('run.effective_phase in {"", "Pending", "Running"}', "false")
            await call(
                "PolicyImpact", "POST", "/v1/policies/block-while-verifying/impact",
                json={"draft": {**write, "source": lenient}, "since": "3650d"},
            )  # fmt: skip
            await call("PutPolicy", "PUT", "/v1/policies/block-while-verifying", json=write)
            await call(
                "PatchPolicy",
                "PATCH",
                "/v1/policies/block-while-verifying",
                json={"mode": "warn"},
                headers={"content-type": "application/merge-patch+json"},
            )
            await call("ListPolicyRevisions", "GET", "/v1/policies/block-while-verifying/revisions")
            await call("GetPolicyRevision", "GET", "/v1/policies/block-while-verifying/revisions/1")
            await call(
                "RollbackPolicy",
                "POST",
                "/v1/policies/block-while-verifying/rollback",
                json={"revision": 1, "comment": "back to enforce"},
            )
            await call("DeletePolicy", "DELETE", "/v1/policies/admission")
            await call("RestorePolicy", "POST", "/v1/policies/admission/restore", json={"comment": "needed"})

            body = {"name": "oncall-reader", "role": "reader", "namespaces": ["kargo-demo"]}
            await call("CreateToken", "POST", "/v1/tokens", json=body)
            await call("ListTokens", "GET", "/v1/tokens")
            await call("RevokeToken", "DELETE", "/v1/tokens/oncall-reader")
            await call("ListAuditEvents", "GET", "/v1/audit", params={"limit": 3})

            metrics = await call("GetMetrics", "GET", "/metrics")
            # The service's own families (not the process/runtime ones), without the *_created timestamps.
            kept = [line for line in metrics.splitlines() if "policy_server_" in line and "_created" not in line]
            examples["GetMetrics"]["200"] = {"text/plain": "\n".join(kept[:24]) + "\n"}
    return examples


def main() -> None:
    examples = asyncio.run(capture())
    OUTPUT.write_text(json.dumps(examples, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT.relative_to(ROOT)}: {len(examples)} operations\n")


if __name__ == "__main__":
    main()
