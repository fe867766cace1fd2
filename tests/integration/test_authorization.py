"""Authorization matrix: every endpoint x every role x inside/outside the token's namespaces."""

from __future__ import annotations

import pytest

from tests.conftest import app_client, load

ROLES = ["reader", "controller", "policy-author", "admin"]
GRANTS = {
    "read": set(ROLES),
    "control": {"controller", "admin"},
    "author": {"policy-author", "admin"},
    "admin": {"admin"},
}
P6 = "prod.01kztrdxmgg3c76w16pjvk9zds.759376c"


def _promotion(fixtures_dir, namespace: str) -> dict:
    obj = load(fixtures_dir / "snapshot" / "promotions" / f"{P6}.json")
    obj["metadata"]["namespace"] = namespace
    return obj


def _review(namespace: str) -> dict:
    """An AdmissionReview of a Promotion CREATE in ``namespace``."""
    promotion = {"metadata": {"namespace": namespace, "name": "prod.x"}, "spec": {"stage": "prod", "freight": "f"}}
    request = {"uid": "u1", "kind": {"kind": "Promotion"}, "operation": "CREATE", "namespace": namespace}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {**request, "object": promotion}}


def endpoints(fixtures_dir, ids: dict[str, str]) -> list[tuple[str, str, str, dict | None, str]]:
    """(method, path, capability, json body, scope rule) where the rule is `ns` (namespace-bound),
    `any` (not bound to a namespace) or `unscoped` (needs a token limited to no namespace)."""
    out = []
    for ns in ("kargo-demo", "other"):
        out += [
            ("POST", "/v1/state", "control", _promotion(fixtures_dir, ns), f"ns:{ns}"),
            ("GET", f"/v1/state/promotions/{ns}/{P6}", "read", None, f"ns:{ns}"),
            ("GET", f"/v1/state/promotions/{ns}", "read", None, f"ns:{ns}"),
            ("DELETE", f"/v1/state/freights/{ns}/nothing", "control", None, f"ns:{ns}"),
            ("GET", f"/v1/namespaces/{ns}/stages", "read", None, f"ns:{ns}"),
            ("GET", f"/v1/namespaces/{ns}/stages/prod", "read", None, f"ns:{ns}"),
            ("GET", f"/v1/namespaces/{ns}/promotions/{P6}", "read", None, f"ns:{ns}"),
            ("POST", "/v1/decisions", "control", {"promotion": {"namespace": ns, "name": P6}}, f"ns:{ns}"),
            ("GET", f"/v1/decisions?namespace={ns}", "read", None, f"ns:{ns}"),
            ("GET", f"/v1/decisions/{ids[ns]}", "read", None, f"ns:{ns}"),
            ("GET", f"/v1/decisions/{ids[ns]}/test?policy=admission", "read", None, f"ns:{ns}"),
            ("POST", "/v1/evaluate", "author", {"input": {"namespace": ns}, "policy": "admission"}, f"ns:{ns}"),
            ("POST", "/v1/admission/promotions", "control", _review(ns), f"ns:{ns}"),
        ]
    out += [
        ("GET", "/v1/decisions", "read", None, "any"),
        ("GET", "/v1/namespaces", "read", None, "any"),
        ("GET", "/v1/policies", "read", None, "any"),
        ("GET", "/v1/policies/admission", "read", None, "any"),
        ("GET", "/v1/policies/admission/revisions", "read", None, "any"),
        ("GET", "/v1/policies/admission/revisions/1", "read", None, "any"),
        ("GET", "/v1/schemas/decision-input", "read", None, "any"),
        ("POST", "/v1/policies/admission/test", "author", None, "any"),
        ("POST", "/v1/policies/admission/impact", "author", {"revision": 1, "max_decisions": 10}, "any"),
        ("PUT", "/v1/policies/scratch", "author", {"source": "not rego"}, "unscoped"),
        ("POST", "/v1/policies/nothing/rollback", "author", {"revision": 1}, "unscoped"),
        ("DELETE", "/v1/policies/nothing", "author", None, "unscoped"),
        ("POST", "/v1/policies/nothing/restore", "author", None, "unscoped"),
        ("POST", "/v1/tokens", "admin", {"name": "Bad Name", "role": "reader"}, "unscoped"),
        ("GET", "/v1/tokens", "admin", None, "unscoped"),
        ("DELETE", "/v1/tokens/nobody", "admin", None, "unscoped"),
        ("GET", "/v1/audit", "admin", None, "unscoped"),
    ]
    return out


def expected(role: str, scoped: bool, capability: str, rule: str) -> str:
    if role not in GRANTS[capability]:
        return "forbidden"
    if not scoped or rule == "any":
        return "allowed"
    if rule == "unscoped":
        return "forbidden"
    return "allowed" if rule == "ns:kargo-demo" else "forbidden"


async def test_every_endpoint_for_every_role_inside_and_outside_its_namespaces(client, settings, fixtures_dir):
    await client.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes())
    await client.post("/v1/state", json=_promotion(fixtures_dir, "other"))
    ids = {}
    for ns in ("kargo-demo", "other"):
        ids[ns] = (await client.post("/v1/decisions", json={"promotion": {"namespace": ns, "name": P6}})).json()["id"]
    tokens = {}
    for role in ROLES:
        for scoped in (False, True):
            body = {"name": f"{role}-{'scoped' if scoped else 'all'}", "role": role}
            if scoped:
                body["namespaces"] = ["kargo-demo"]
            created = await client.post("/v1/tokens", json=body)
            assert created.status_code == 201, created.text
            tokens[(role, scoped)] = created.json()["token"]

    mismatches = []
    async with app_client(settings, token=None) as anonymous:
        for method, path, capability, body, rule in endpoints(fixtures_dir, ids):
            for headers, want in (({}, 401), ({"authorization": "Bearer pst_not-a-token"}, 401)):
                response = await anonymous.request(method, path, json=body, headers=headers)
                if response.status_code != want:
                    mismatches.append((method, path, "no valid token", response.status_code))
            for (role, scoped), secret in tokens.items():
                response = await anonymous.request(
                    method, path, json=body, headers={"authorization": f"Bearer {secret}"}
                )
                outcome = expected(role, scoped, capability, rule)
                got = response.status_code
                ok = got == 403 if outcome == "forbidden" else got not in (401, 403) and got < 500
                if not ok:
                    mismatches.append((method, path, role, "scoped" if scoped else "all", outcome, got))
                if got in (401, 403):
                    assert response.headers["content-type"].startswith("application/problem+json")
    assert mismatches == []


async def test_scoped_tokens_see_only_their_namespaces_in_the_decision_log(client, fixtures_dir):
    await client.post("/v1/state", content=(fixtures_dir / "list-kargo-demo.json").read_bytes())
    await client.post("/v1/state", json=_promotion(fixtures_dir, "other"))
    for ns in ("kargo-demo", "other"):
        await client.post("/v1/decisions", json={"promotion": {"namespace": ns, "name": P6}})
    secret = (
        await client.post("/v1/tokens", json={"name": "demo-reader", "role": "reader", "namespaces": ["kargo-demo"]})
    ).json()["token"]
    page = (await client.get("/v1/decisions", headers={"authorization": f"Bearer {secret}"})).json()
    assert {d["promotion"]["namespace"] for d in page["items"]} == {"kargo-demo"}
    everything = (await client.get("/v1/decisions")).json()
    assert {d["promotion"]["namespace"] for d in everything["items"]} == {"kargo-demo", "other"}


async def test_scoped_tokens_list_only_their_namespaces(client, fixtures_dir):
    listing = load(fixtures_dir / "list-kargo-demo.json")
    await client.post("/v1/state", json=listing)
    for item in listing["items"]:
        item["metadata"]["namespace"] = "payments"
    await client.post("/v1/state", json=listing)
    await client.delete("/v1/state/stages/payments/test")
    assert (await client.get("/v1/namespaces")).json() == [
        {"name": "kargo-demo", "stages": 3},
        {"name": "payments", "stages": 2},  # a deleted Stage is not counted
    ]
    secret = (
        await client.post("/v1/tokens", json={"name": "pay-reader", "role": "reader", "namespaces": ["payments"]})
    ).json()["token"]
    limited = await client.get("/v1/namespaces", headers={"authorization": f"Bearer {secret}"})
    assert limited.json() == [{"name": "payments", "stages": 2}]


async def test_a_list_touching_another_namespace_is_refused_whole(client, settings, fixtures_dir):
    secret = (
        await client.post("/v1/tokens", json={"name": "demo-ctl", "role": "controller", "namespaces": ["kargo-demo"]})
    ).json()["token"]
    mixed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [_promotion(fixtures_dir, "kargo-demo"), _promotion(fixtures_dir, "other")],
    }
    response = await client.post("/v1/state", json=mixed, headers={"authorization": f"Bearer {secret}"})
    assert response.status_code == 403
    assert (await client.get(f"/v1/state/promotions/kargo-demo/{P6}")).status_code == 404


async def test_revoked_tokens_stop_working_and_changes_are_audited(client, settings):
    created = (await client.post("/v1/tokens", json={"name": "ci", "role": "policy-author"})).json()
    author = {"authorization": f"Bearer {created['token']}"}
    source = 'package policies.audited\n\nimport rego.v1\n\ndeny contains "x" if input.never\n'
    assert (await client.put("/v1/policies/audited", json={"source": source}, headers=author)).status_code == 200
    changed = await client.put("/v1/policies/audited", json={"source": source, "mode": "warn"}, headers=author)
    assert changed.json()["active"]["author"] == "ci"
    assert (await client.delete("/v1/tokens/ci")).status_code == 200
    import asyncio

    await asyncio.sleep(2.1)  # the authentication cache holds a token for at most two seconds
    assert (await client.get("/v1/policies", headers=author)).status_code == 401

    events = (await client.get("/v1/audit")).json()["items"]
    summary = [(e["actor"], e["action"], e["target"], e["before"], e["after"]) for e in events]
    assert ("ci", "policy.update", "policy/audited", "1", "2") in summary
    assert ("ci", "policy.create", "policy/audited", None, "1") in summary
    assert ("bootstrap-admin", "token.revoke", "token/ci", "policy-author", None) in summary
    assert ("bootstrap-admin", "token.create", "token/ci", None, "policy-author") in summary
    update = next(e for e in events if e["action"] == "policy.update")
    assert update["detail"]["mode_changed"] is True and update["detail"]["scope_changed"] is False
    only_ci = (await client.get("/v1/audit", params={"actor": "ci"})).json()["items"]
    assert {e["actor"] for e in only_ci} == {"ci"}
    listed = (await client.get("/v1/tokens")).json()
    assert all("token" not in t for t in listed) and any(t["name"] == "ci" and t["revoked_at"] for t in listed)


@pytest.mark.parametrize("header", ["", "Basic Zm9vOmJhcg==", "Bearer", "Bearer pst_unknown"])
async def test_missing_or_unknown_tokens_are_401_with_a_challenge(settings, header):
    async with app_client(settings, token=None) as anonymous:
        response = await anonymous.get("/v1/policies", headers={"authorization": header} if header else {})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["code"] == "unauthorized"
        assert (await anonymous.get("/health")).status_code == 200
        assert (await anonymous.get("/docs/")).status_code == 200


async def test_a_token_revoked_on_another_replica_stops_working_while_it_is_in_constant_use(database_url):
    """Cached principals are read again ahead of expiry (no request waits for that read under load), yet a token
    revoked through another replica is refused within the cache's lifetime, however busy it is."""
    import asyncio
    import time

    from policy_server.errors import Unauthorized
    from policy_server.service.access import AccessService
    from policy_server.store import AccessStore, Database, upgrade

    db = Database(database_url)
    await upgrade(db)
    try:

        class SlowStore(AccessStore):  # a database answering slowly under load
            async def token(self, token_id):
                await asyncio.sleep(0.05)
                return await super().token(token_id)

        busy, other = AccessService(SlowStore(db), cache_s=0.5), AccessService(AccessStore(db), cache_s=0.5)
        _, secret = await other.create_token("ci", "controller", None, "test")
        header = f"Bearer {secret}"
        waited = []
        for _ in range(60):  # 1.2 s of constant use: past two lifetimes, and never a request waiting for a read
            started = time.monotonic()
            assert (await busy.authenticate(header)).name == "ci"
            waited.append(time.monotonic() - started)
            await asyncio.sleep(0.02)
        assert waited[0] >= 0.05 and max(waited[1:]) < 0.04, waited  # only the first request waited for the row

        await other.revoke("ci", "test")
        revoked = time.monotonic()
        while True:
            try:
                await busy.authenticate(header)
            except Unauthorized:
                break
            assert time.monotonic() - revoked < 0.5 + 0.2, "a revoked token still works past the cache's lifetime"
            await asyncio.sleep(0.01)
    finally:
        await db.dispose()
