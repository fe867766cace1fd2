"""`policy-server run --watch` against a real kube-apiserver: what Kargo's objects look like in the cluster is what
policy-server records, through creation, deletion while nobody watched, and an API server restart."""

from __future__ import annotations

import os
import re
import signal
import time

import httpx

from tests.conftest import ADMIN
from tests.integration.conftest import AR_E, PROD_P6, PROD_P7
from tests.support.kube import demo_objects

PLURALS = {"Stage": "stages", "Promotion": "promotions", "Freight": "freights", "AnalysisRun": "analysisruns"}
RESOURCES = {
    "Stage": "stages.kargo.akuity.io",
    "Promotion": "promotions.kargo.akuity.io",
    "Freight": "freights.kargo.akuity.io",
    "AnalysisRun": "analysisruns.argoproj.io",
}


def _watching(server_factory, kube, tmp_path, *namespaces: str, data: str = "data"):
    env = {
        "POLICY_SERVER_DATA_DIR": str(tmp_path / data),
        "POLICY_SERVER_ENGINE_WORKERS": "1",
        "POLICY_SERVER_WATCH": "true",
        "POLICY_SERVER_KUBECONFIG": str(kube.kubeconfig),
        "POLICY_SERVER_WATCH_NAMESPACES": ",".join(namespaces),
    }
    server = server_factory(env)
    _until(lambda: httpx.get(f"{server.url}/ready", timeout=5).status_code == 200, "the watcher's initial list")
    return server


def _until(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except (httpx.HTTPError, KeyError, AssertionError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"not reached in {timeout} s: {what} (last: {last!r})")


def _recorded(server, namespace: str) -> dict[str, dict[str, str]]:
    """What policy-server holds for the namespace: kind → name → resourceVersion."""
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as http:
        return {
            kind: {o["name"]: o["resource_version"] for o in http.get(f"/v1/state/{plural}/{namespace}").json()}
            for kind, plural in PLURALS.items()
        }


def _served(kube, namespace: str) -> dict[str, dict[str, str]]:
    """What the API server serves for the namespace, in the same shape."""
    return {
        kind: {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in kube.get(resource, namespace)}
        for kind, resource in RESOURCES.items()
    }


def test_the_demo_project_created_with_kubectl_is_recorded_as_served(server_factory, kube, tmp_path):
    namespace = kube.project()
    server = _watching(server_factory, kube, tmp_path)  # no namespaces given: every Kargo project namespace
    objects = demo_objects()
    for obj in objects:
        kube.create(obj, namespace)
    served = _served(kube, namespace)
    assert sum(map(len, served.values())) == len(objects) == 25
    _until(lambda: _recorded(server, namespace) == served, "every object at the resourceVersion the API serves")

    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        prod = http.get(f"/v1/namespaces/{namespace}/stages/prod").json()
        assert [p["name"] for p in prod["queue"]] == [PROD_P6, PROD_P7]
        assert prod["current_verification"]["name"] == AR_E
        decision = http.post("/v1/decisions", json={"promotion": {"namespace": namespace, "name": PROD_P6}}).json()
        assert [r["code"] for r in decision["reasons"]] == ["verification_in_progress"]
        watch = next(c for c in http.get("/ready").json()["checks"] if c["name"] == "watch")
        assert watch["ok"] and watch["detail"].startswith("watching")
        metrics = http.get("/metrics").text
    assert 'policy_server_watch_events_total{kind="Promotion",type="ADDED"}' in metrics
    assert "policy_server_watch_lag_seconds_count" in metrics


def test_an_object_deleted_while_nobody_watched_is_a_tombstone_when_the_watcher_is_back(server_factory, kube, tmp_path):
    namespace = kube.project()
    server = _watching(server_factory, kube, tmp_path, namespace)
    for obj in demo_objects():
        kube.create(obj, namespace)
    _until(lambda: PROD_P7 in _recorded(server, namespace)["Promotion"], "P7 recorded")
    server.stop()

    kube.kubectl("delete", "promotions.kargo.akuity.io", PROD_P7, "-n", namespace)
    server = _watching(server_factory, kube, tmp_path, namespace)  # the same store: the same data directory
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        assert http.get(f"/v1/state/promotions/{namespace}/{PROD_P7}").status_code == 404
        prod = http.get(f"/v1/namespaces/{namespace}/stages/prod").json()
        assert [p["name"] for p in prod["queue"]] == [PROD_P6]
    assert _recorded(server, namespace) == _served(kube, namespace)


def test_an_api_server_restart_mid_stream_loses_no_update(server_factory, kube, tmp_path):
    namespace = kube.project()
    server = _watching(server_factory, kube, tmp_path, namespace)
    for obj in demo_objects():
        kube.create(obj, namespace)
    # Kargo starts P6 while the API server goes away and comes back; then more changes follow at once.
    kube.patch_status("Promotion", PROD_P6, namespace, {"phase": "Running"})
    kube.stop_apiserver()
    time.sleep(1)
    kube.start_apiserver()
    kube.patch_status("AnalysisRun", AR_E, namespace, {"phase": "Failed", "message": "error rate too high"})
    kube.patch_status("Promotion", PROD_P6, namespace, {"phase": "Succeeded"})
    kube.kubectl("delete", "promotions.kargo.akuity.io", PROD_P7, "-n", namespace)
    served = _served(kube, namespace)
    _until(lambda: _recorded(server, namespace) == served, "the state the API server serves after the restart", 60)
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:
        p6 = http.get(f"/v1/namespaces/{namespace}/promotions/{PROD_P6}").json()
    assert p6["phase"] == "Succeeded"


def test_a_kubectl_watch_piped_into_ingest_is_recorded_while_it_runs(server_factory, kube, tmp_path):
    """The recipe for clusters policy-server cannot reach: one `kubectl get -w` per kind, piped into `ingest`."""
    import subprocess

    from tests.conftest import ADMIN_TOKEN
    from tests.e2e.conftest import BIN

    namespace = kube.project()
    server = server_factory({"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_ENGINE_WORKERS": "1"})
    pipeline = (
        f"{kube.kubectl_bin} get promotions.kargo.akuity.io -n {namespace} -w --output-watch-events -o json"
        f" | {BIN} ingest --url {server.url} --batch 1 -"
    )
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "POLICY_SERVER_TOKEN": ADMIN_TOKEN}
    watching = subprocess.Popen(["bash", "-c", pipeline], env=env, start_new_session=True)
    try:
        time.sleep(1)
        for obj in demo_objects(("Promotion",))[:3]:
            kube.create(obj, namespace)
        served = _served(kube, namespace)["Promotion"]
        _until(lambda: _recorded(server, namespace)["Promotion"] == served, "the Promotions, while kubectl watches")
        assert watching.poll() is None  # still running: recorded from the stream, not at its end
    finally:
        os.killpg(watching.pid, signal.SIGTERM)
        watching.wait(10)


def test_policy_server_watch_records_into_a_running_server_over_its_api(server_factory, kube, tmp_path):
    """`policy-server watch --url` (where the API server is reachable but the policy-server is elsewhere)."""
    import subprocess

    from tests.conftest import ADMIN_TOKEN
    from tests.e2e.conftest import BIN

    namespace = kube.project()
    for obj in demo_objects():
        kube.create(obj, namespace)
    server = server_factory({"POLICY_SERVER_DATA_DIR": str(tmp_path / "data"), "POLICY_SERVER_ENGINE_WORKERS": "1"})
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as http:  # a stale object to be forgotten
        stale = next(o for o in demo_objects(("Promotion",)) if o["metadata"]["name"] == PROD_P7)
        stale = {
            **stale,
            "metadata": {**stale["metadata"], "namespace": namespace, "name": "prod.gone", "resourceVersion": "1"},
        }
        assert http.post("/v1/state", json=stale).json()["applied"] == 1
    env = {**os.environ, "POLICY_SERVER_TOKEN": ADMIN_TOKEN}
    log = (tmp_path / "watch.log").open("wb")
    watcher = subprocess.Popen(
        [str(BIN), "watch", "--url", server.url, "--namespace", namespace, "--kubeconfig", str(kube.kubeconfig)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        served = _served(kube, namespace)
        _until(lambda: _recorded(server, namespace) == served, "the namespace as served, the stale one forgotten")
        kube.patch_status("Promotion", PROD_P6, namespace, {"phase": "Running"})
        served = _served(kube, namespace)
        _until(lambda: _recorded(server, namespace) == served, "the change recorded through the API")
    finally:
        watcher.terminate()
        watcher.wait(10)
        log.close()


def test_of_a_server_s_workers_one_watches_and_each_answers_ready_alike(server_factory, kube, tmp_path):
    """`run --workers 2 --watch`: one worker lists and watches (not one list per worker: twice the API server's
    load and the store's writes), and /ready says the same from either worker."""
    namespace = kube.project()
    for obj in demo_objects():
        kube.create(obj, namespace)
    env = {
        "POLICY_SERVER_DATA_DIR": str(tmp_path / "data"),
        "POLICY_SERVER_ENGINE_WORKERS": "1",
        "POLICY_SERVER_WATCH": "true",
        "POLICY_SERVER_KUBECONFIG": str(kube.kubeconfig),
        "POLICY_SERVER_WATCH_NAMESPACES": namespace,
    }
    server = server_factory(env, "--workers", "2")
    _until(lambda: _recorded(server, namespace) == _served(kube, namespace), "the namespace recorded")
    time.sleep(1.5)  # the watching worker publishes what it says every second
    details = set()
    for _ in range(30):  # a new connection each time: the kernel hands them to either worker
        ready = httpx.get(f"{server.url}/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        details.add(next(c for c in ready.json()["checks"] if c["name"] == "watch")["detail"])
    assert len(details) == 2 and any("(worker pid" in d for d in details), details  # the watcher's, and relayed
    metrics = httpx.get(f"{server.url}/metrics", headers=ADMIN, timeout=10).text
    lists = re.findall(r'^policy_server_watch_lists_total\{kind="(\w+)",reason="list"\} ([\d.]+)$', metrics, re.M)
    assert sorted(lists) == sorted((kind, "1.0") for kind in PLURALS), lists

    kube.patch_status("AnalysisRun", AR_E, namespace, {"phase": "Failed", "message": "error rate too high"})
    _until(lambda: _recorded(server, namespace) == _served(kube, namespace), "the change recorded")

    # The watching worker dies: another worker takes the watch over, and later changes are still recorded.
    watching = int(re.search(r"\(worker pid (\d+)\)", next(d for d in details if "(worker pid" in d)).group(1))
    os.kill(watching, signal.SIGKILL)
    kube.patch_status("Promotion", PROD_P6, namespace, {"phase": "Running"})
    _until(lambda: _recorded(server, namespace) == _served(kube, namespace), "a change after the watcher died", 30)
    _until(lambda: httpx.get(f"{server.url}/ready", timeout=5).status_code == 200, "ready again")
