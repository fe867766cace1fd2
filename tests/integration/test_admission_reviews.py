"""Admission reviews answered in process (the real API server drives the same endpoint in tests/e2e)."""

from __future__ import annotations

from tests.conftest import load


def _review(operation: str = "CREATE", dry_run: bool = False, stage: str = "prod") -> dict:
    promotion = {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Promotion",
        "metadata": {"namespace": "kargo-demo", "name": "prod.01kzv1n2xq8c3d7e9f0g1h2j3k.759376c"},
        "spec": {"stage": stage, "freight": "759376cafc8e421500b205c6eef4f1989c05217f"},
    }
    request = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "kargo.akuity.io", "version": "v1alpha1", "kind": "Promotion"},
        "resource": {"group": "kargo.akuity.io", "version": "v1alpha1", "resource": "promotions"},
        "operation": operation,
        "namespace": "kargo-demo",
        "object": promotion,
        "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


async def test_creation_behind_a_running_verification_is_denied_with_only_admission_policies_asked(
    client, fixtures_dir
):
    await client.post("/v1/state", json=load(fixtures_dir / "list-kargo-demo.json"))
    answer = (await client.post("/v1/admission/promotions?timeout=5s", json=_review())).json()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002" and response["allowed"] is False
    assert response["status"]["code"] == 403
    assert "block-while-verifying" in response["status"]["message"]
    assert "verification_in_progress" in response["status"]["message"]
    # FIFO order is a `start` rule: a new Promotion is always last, so it is not asked at admission.
    assert "not_queue_head" not in response["status"]["message"]
    (logged,) = (await client.get("/v1/decisions", params={"stage": "prod"})).json()["items"]
    assert logged["caller"] == "admission (alice@example.com)" and logged["prospective"]
    full = (await client.get(f"/v1/decisions/{logged['id']}")).json()
    assert full["input"]["point"] == "admission"
    assert {p["id"] for p in full["policies"]} == {"block-while-verifying"}


async def test_a_dry_run_review_is_judged_and_logs_nothing(client, fixtures_dir):
    await client.post("/v1/state", json=load(fixtures_dir / "list-kargo-demo.json"))
    response = (await client.post("/v1/admission/promotions", json=_review(dry_run=True))).json()["response"]
    assert response["allowed"] is False
    assert (await client.get("/v1/decisions")).json()["items"] == []


async def test_warn_mode_policies_come_back_as_warnings(client, fixtures_dir):
    await client.post("/v1/state", json=load(fixtures_dir / "list-kargo-demo.json"))
    patched = await client.patch(
        "/v1/policies/block-while-verifying",
        json={"mode": "warn"},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    response = (await client.post("/v1/admission/promotions", json=_review())).json()["response"]
    assert response["allowed"] is True and "status" not in response
    assert any("verification_in_progress" in w for w in response["warnings"])


async def test_other_operations_pass_untouched_and_a_review_without_request_is_422(client):
    response = (await client.post("/v1/admission/promotions", json=_review("UPDATE"))).json()["response"]
    assert response == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    refused = await client.post("/v1/admission/promotions", json={"apiVersion": "admission.k8s.io/v1"})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
