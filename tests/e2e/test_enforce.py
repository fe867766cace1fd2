"""The enforcer against a real kube-apiserver: a failed verification cancels the Promotions queued behind it
(Kargo #2128), with an Event on each, an audit entry and the outcome on the decision; dry-run changes nothing;
of two enforcing replicas exactly one acts."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import httpx

from tests.conftest import ADMIN, ADMIN_TOKEN, ROOT
from tests.e2e.test_watch import _until
from tests.integration.conftest import AR_E, PROD_P6, PROD_P7
from tests.support.browser import authorize, open_page, screenshot
from tests.support.browser import browser as new_browser
from tests.support.kube import demo_objects

ABORT = "kargo.akuity.io/abort"
LATE = "prod.01kzv0000000000000000000zz.10a9340"  # created after the run failed: left alone


def _stream_status(kind: str, position: int) -> dict:
    lines = (ROOT / "examples" / "kargo-demo" / "watch-prod-verification-failed.jsonl").read_text().splitlines()
    event = json.loads(lines[position])
    assert event["object"]["kind"] == kind
    return event["object"]["status"]


def _enforcing(server_factory, kube, tmp_path, namespace: str, mode: str, data: str = "data", watch: str | None = None):
    env = {
        "POLICY_SERVER_DATA_DIR": str(tmp_path / data),
        "POLICY_SERVER_ENGINE_WORKERS": "1",
        "POLICY_SERVER_WATCH": "true",
        "POLICY_SERVER_WATCH_NAMESPACES": namespace if watch is None else watch,
        "POLICY_SERVER_KUBECONFIG": str(kube.kubeconfig),
        "POLICY_SERVER_ENFORCE": mode,
        "POLICY_SERVER_LEASE_NAMESPACE": namespace,
    }
    server = server_factory(env)
    _until(lambda: httpx.get(f"{server.url}/ready", timeout=5).status_code == 200, "the watcher's initial list")
    return server


def _fail_verification(kube, namespace: str) -> None:
    """What Argo Rollouts and Kargo write when the verification fails now; then a Promotion queued after it."""
    failed = _stream_status("AnalysisRun", 5)
    failed["completedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    kube.patch_status("AnalysisRun", AR_E, namespace, failed)
    kube.patch_status("Stage", "prod", namespace, _stream_status("Stage", 6))
    time.sleep(1.1)  # creation times have whole seconds: the late one is created after the run ended
    late = next(o for o in demo_objects(("Promotion",)) if o["metadata"]["name"] == PROD_P7)
    late = json.loads(json.dumps(late).replace(PROD_P7, LATE))
    late["status"] = {"phase": "Pending"}
    kube.create(late, namespace)


def _annotated(kube, namespace: str) -> dict[str, bool]:
    return {
        p["metadata"]["name"]: ABORT in (p["metadata"].get("annotations") or {})
        for p in kube.get("promotions.kargo.akuity.io", namespace)
        if p["metadata"]["name"] in (PROD_P6, PROD_P7, LATE)
    }


def _events(kube, namespace: str, promotion: str) -> list[dict]:
    listed = json.loads(kube.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    return [e for e in listed if e["involvedObject"]["name"] == promotion and e["reason"] == "AbortedByPolicy"]


def test_a_failed_verification_aborts_the_promotions_queued_before_it_ended(server_factory, kube, tmp_path):
    namespace = kube.project()
    for obj in demo_objects():
        kube.create(obj, namespace)
    server = _enforcing(server_factory, kube, tmp_path, namespace, "on")
    assert _annotated(kube, namespace) == {PROD_P6: False, PROD_P7: False}  # verification running: hold only

    _fail_verification(kube, namespace)
    _until(lambda: _annotated(kube, namespace) == {PROD_P6: True, PROD_P7: True, LATE: False}, "P6 and P7 aborted")
    time.sleep(2)  # and nothing more happens: the late Promotion stays, nothing is patched twice
    assert _annotated(kube, namespace) == {PROD_P6: True, PROD_P7: True, LATE: False}

    # kubectl describe promotion shows which policy aborted it and why.
    (event,) = _events(kube, namespace, PROD_P6)
    assert event["type"] == "Warning" and "cancel-queue-on-failure" in event["message"]
    assert AR_E in event["message"]
    assert len(_events(kube, namespace, PROD_P7)) == 1 and _events(kube, namespace, LATE) == []

    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        decision_id = event["message"].rsplit("decision ", 1)[1].rstrip(")")
        decision = http.get(f"/v1/decisions/{decision_id}").json()
        assert decision["caller"].startswith("enforcer")
        outcomes = {o["promotion"]["name"]: o["outcome"] for o in decision["action_outcomes"]}
        assert outcomes == {PROD_P6: "applied", PROD_P7: "applied"}
        audit = http.get("/v1/audit", params={"action": "promotion.abort"}).json()["items"]
        assert sorted(a["target"] for a in audit) == sorted(f"promotion/{namespace}/{p}" for p in (PROD_P6, PROD_P7))
        metrics = http.get("/metrics").text
    assert 'policy_server_enforced_actions_total{action="abort",outcome="applied"} 2.0' in metrics
    assert "policy_server_enforcer_leader 1.0" in metrics

    # On-call sees it on the decisions page: each action with what the enforcer did.
    from selenium.webdriver.common.by import By

    driver = new_browser(1400, 1400)
    try:
        open_page(driver, f"{server.url}/ui/")
        authorize(driver, ADMIN_TOKEN)
        open_page(driver, f"{server.url}/ui/#/decision/{decision_id}")
        outcomes = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#actions td.outcome")]
        assert len(outcomes) == 2 and all(o.startswith("applied") for o in outcomes), outcomes
        screenshot(driver, "decisions-page-enforced")
    finally:
        driver.quit()


def test_dry_run_records_what_it_would_do_and_patches_nothing(server_factory, kube, tmp_path):
    namespace = kube.project()
    for obj in demo_objects():
        kube.create(obj, namespace)
    server = _enforcing(server_factory, kube, tmp_path, namespace, "dry-run")
    _fail_verification(kube, namespace)

    def would() -> dict[str, str]:
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
            found = http.get("/v1/decisions", params={"namespace": namespace, "code": "verification_failed"}).json()
            outcomes = {}
            for item in found["items"]:
                for o in http.get(f"/v1/decisions/{item['id']}").json()["action_outcomes"]:
                    outcomes[o["promotion"]["name"]] = o["outcome"]
            return outcomes

    _until(lambda: would() == {PROD_P6: "dry_run", PROD_P7: "dry_run"}, "dry-run outcomes for P6 and P7")
    assert _annotated(kube, namespace) == {PROD_P6: False, PROD_P7: False, LATE: False}
    assert _events(kube, namespace, PROD_P6) == []


def test_the_enforcer_acts_in_the_last_of_many_projects_it_follows(server_factory, kube, tmp_path):
    """Every Kargo project is followed with four watches, each holding a connection to the API server: with 30
    projects (120 watches, more than a client's usual pool of 100) a failure in the last one is still enforced,
    and a Promotion created there is still recorded."""
    *others, namespace = kube.projects(30)
    for obj in demo_objects():
        kube.create(obj, namespace)
    server = _enforcing(server_factory, kube, tmp_path, namespace, "on", watch="")  # "": every project namespace
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        watch = next(c for c in http.get("/ready").json()["checks"] if c["name"] == "watch")
        pairs, namespaces = map(int, re.findall(r"\d+", watch["detail"]))
        assert namespaces >= len(others) + 1 and pairs == 4 * namespaces, watch["detail"]

    _fail_verification(kube, namespace)
    _until(lambda: _annotated(kube, namespace) == {PROD_P6: True, PROD_P7: True, LATE: False}, "P6 and P7 aborted")
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        _until(lambda: http.get(f"/v1/state/promotions/{namespace}/{LATE}").status_code == 200, "the late one")
        # and the first project is followed as well: a Stage created there is recorded
        stage = next(o for o in demo_objects(("Stage",)) if o["metadata"]["name"] == "test")
        kube.create(stage, others[0])
        _until(lambda: http.get(f"/v1/state/stages/{others[0]}/test").status_code == 200, "a Stage in the first")


def test_of_two_enforcing_replicas_one_acts_and_each_promotion_is_patched_once(server_factory, kube, tmp_path):
    namespace = kube.project()
    for obj in demo_objects():
        kube.create(obj, namespace)
    servers = [_enforcing(server_factory, kube, tmp_path, namespace, "on") for _ in range(2)]  # one store
    lease = json.loads(kube.kubectl("get", "lease", "policy-server-enforcer", "-n", namespace, "-o", "json"))
    assert lease["spec"]["holderIdentity"]

    _fail_verification(kube, namespace)
    _until(lambda: _annotated(kube, namespace) == {PROD_P6: True, PROD_P7: True, LATE: False}, "P6 and P7 aborted")
    time.sleep(2)
    assert len(_events(kube, namespace, PROD_P6)) == 1 and len(_events(kube, namespace, PROD_P7)) == 1
    leaders = ["policy_server_enforcer_leader 1.0" in httpx.get(f"{s.url}/metrics", timeout=10).text for s in servers]
    assert sorted(leaders) == [False, True]


def test_the_enforcer_applies_a_library_policy_once_it_is_turned_on(server_factory, kube, tmp_path):
    """supersede-pending (off by default): when a Promotion of newer Freight is created, the older Pending ones
    of the same Warehouse are aborted by the enforcer, with no code of the user's."""
    namespace = kube.project()
    for obj in demo_objects():
        kube.create(obj, namespace)
    # P6's verification passed: nothing else holds the queue.
    kube.patch_status("AnalysisRun", AR_E, namespace, dict(_stream_status("AnalysisRun", 5), phase="Successful"))
    server = _enforcing(server_factory, kube, tmp_path, namespace, "on")
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        assert http.post("/v1/policies/supersede-pending/restore").status_code == 200
    # Kargo discovers new Freight (creation times have whole seconds: a second later), and a Promotion of it
    # is created: P6 and P7 carry older Freight of the same Warehouse.
    time.sleep(1.1)
    freight = next(o for o in demo_objects(("Freight",)) if o["metadata"]["name"].startswith("0ccf689"))
    new_freight = "f1e5a0b2c3d4e5f60718293a4b5c6d7e8f901234"
    kube.create(json.loads(json.dumps(freight).replace(freight["metadata"]["name"], new_freight)), namespace)
    newest = next(o for o in demo_objects(("Promotion",)) if o["metadata"]["name"] == PROD_P6)
    fresh = "prod.01kzv0000000000000000000zy.f1e5a0b"
    text = json.dumps(newest).replace(PROD_P6, fresh).replace("759376cafc8e421500b205c6eef4f1989c05217f", new_freight)
    newest = json.loads(text)
    newest["status"] = {"phase": "Pending"}
    kube.create(newest, namespace)

    def superseded() -> dict[str, bool]:
        return {
            p["metadata"]["name"]: ABORT in (p["metadata"].get("annotations") or {})
            for p in kube.get("promotions.kargo.akuity.io", namespace)
            if p["metadata"]["name"] in (PROD_P6, PROD_P7, fresh)
        }

    _until(lambda: superseded() == {PROD_P6: True, PROD_P7: True, fresh: False}, "P6 and P7 superseded")
    (event,) = _events(kube, namespace, PROD_P6)  # P6 is superseded by the fresh one (P7 maybe already by P6)
    assert "supersede-pending" in event["message"] and fresh in event["message"]
    assert len(_events(kube, namespace, PROD_P7)) == 1


def test_the_deployed_rbac_grants_what_the_watcher_and_enforcer_use_and_nothing_more(kube):
    """deploy/policy-server.yaml's RBAC, applied to the real API server, asked with `kubectl auth can-i`."""
    kube.kubectl("create", "namespace", "kargo-policy", check=False)
    kube.kubectl("apply", "-f", "-", stdin=_rbac_documents())
    project = kube.project()
    account = "system:serviceaccount:kargo-policy:policy-server"

    def can(verb: str, resource: str, namespace: str, *extra: str) -> bool:
        answer = kube.kubectl("auth", "can-i", verb, resource, "-n", namespace, "--as", account, *extra, check=False)
        return answer.strip() == "yes"

    for resource in ("stages.kargo.akuity.io", "promotions.kargo.akuity.io", "freights.kargo.akuity.io",
                     "analysisruns.argoproj.io"):  # fmt: skip
        assert all(can(verb, resource, project) for verb in ("get", "list", "watch")), resource
    assert can("patch", "promotions.kargo.akuity.io", project)
    assert can("promote", "stages.kargo.akuity.io", project)  # Kargo's webhook asks for it on an abort
    assert can("create", "events", project)
    assert can("list", "namespaces", "default") and can("watch", "namespaces", "default")
    assert can("create", "leases.coordination.k8s.io", "kargo-policy")
    assert can("update", "leases.coordination.k8s.io/policy-server-enforcer", "kargo-policy")
    # Least privilege: no deletes, no writes to Stages or runs, no other Lease, no Secrets.
    assert not can("delete", "promotions.kargo.akuity.io", project)
    assert not can("patch", "stages.kargo.akuity.io", project)
    assert not can("patch", "analysisruns.argoproj.io", project)
    assert not can("update", "leases.coordination.k8s.io/kube-controller-manager", "kargo-policy")
    assert not can("get", "secrets", project)


def _rbac_documents() -> str:
    import yaml

    documents = yaml.safe_load_all((ROOT / "deploy" / "policy-server.yaml").read_text())
    kinds = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    return yaml.safe_dump_all([d for d in documents if d and d["kind"] in kinds])
