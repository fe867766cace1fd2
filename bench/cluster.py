"""Cluster benchmarks against a real kube-apiserver (tests/support/kube.py): what a Kargo user feels.

- failed verification → last abort patch: an AnalysisRun's status turns Failed in the API server; how long until
  the enforcer has annotated every Promotion queued before it (goal p99 ≤ 2 s);
- recording lag: an object changes in the API server; how long until the API of policy-server serves that
  resourceVersion (goal p99 ≤ 1 s);
- admission: AdmissionReviews for Promotion CREATE at 16 connections, next to `GET /health` (goal p99 ≤ 50 ms);
- time to ready: a project of 1,000 Stages and 100,000 Promotions (quick: 100 and 10,000) listed, recorded and
  `/ready`.

    python bench/run.py --only cluster [--full]
"""

from __future__ import annotations

import asyncio
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ABORT = "kargo.akuity.io/abort"
GROUP, VERSION = "kargo.akuity.io", "v1alpha1"
AR_E = "prod.01kztrcpjk2gpy8b8wxaq1g00v.1265247"
_DEMO_QUEUE = ("prod.01kztrdxmgg3c76w16pjvk9zds.759376c", "prod.01kztrf9sk2ppygyjnh3f2mnnz.10a9340")
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _ulid(ms: int, n: int) -> str:
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[ms % 32])
        ms //= 32
    return "".join(reversed(chars)) + f"{n:016d}"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


async def _clients(kubeconfig: Path) -> tuple[Any, Any, Any]:
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    return api, client.CustomObjectsApi(api), client.CoreV1Api(api)


def _queued_project(kube: Any, namespace: str, queued: int) -> list[str]:
    """The demo project with ``queued`` Pending Promotions for prod behind AR-e (Running); their names."""
    from tests.support.kube import demo_objects

    template = next(o for o in demo_objects(("Promotion",)) if o["metadata"]["name"].startswith("prod.01kztrdx"))
    names = []
    for obj in demo_objects():
        if obj["kind"] == "Promotion" and obj["metadata"]["name"] in _DEMO_QUEUE:
            continue  # the demo's own prod queue (P6, P7) is replaced by ours
        kube.create(obj, namespace)
    base = int(datetime(2026, 8, 12, 10, 32, tzinfo=UTC).timestamp() * 1000)
    for i in range(queued):
        promotion = copy.deepcopy(template)
        name = f"prod.{_ulid(base + i, i)}.759376c"
        promotion["metadata"]["name"] = name
        promotion["status"] = {"phase": "Pending"}
        kube.create(promotion, namespace)
        names.append(name)
    return names


@contextmanager
def _watching_server(server: Any, kube: Any, folder: Path, enforce: str, workers: int) -> Iterator[str]:
    with server(
        f"sqlite+aiosqlite:///{folder / 'store.db'}",
        workers,
        watch="true",
        kubeconfig=str(kube.kubeconfig),
        enforce=enforce,
        lease_namespace="default",
        engine_workers="1",
    ) as url:
        yield url


def _queue_length(base_url: str, namespace: str) -> int:
    """How many Promotions policy-server has recorded in prod's queue."""
    answer = httpx.get(f"{base_url}/v1/namespaces/{namespace}/stages/prod", headers=_auth(), timeout=10)
    return len(answer.json()["queue"]) if answer.status_code == 200 else -1


def _until(condition: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("benchmark condition not reached")


async def _abort_latency(kube: Any, base_url: str, rounds: int, queued: int) -> list[float]:
    """Per round: a fresh project; AR-e's status turns Failed; seconds until every queued Promotion is annotated."""
    api, custom, _ = await _clients(kube.kubeconfig)
    samples = []
    try:
        for _ in range(rounds):
            namespace = kube.project("bench-abort")
            names = _queued_project(kube, namespace, queued)
            _until(lambda ns=namespace: _queue_length(base_url, ns) >= queued)
            run = await custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", namespace, "analysisruns", AR_E)
            status = dict(run["status"], phase="Failed", completedAt=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
            started = time.perf_counter()
            await custom.patch_namespaced_custom_object(
                "argoproj.io", "v1alpha1", namespace, "analysisruns", AR_E, {"status": status},
                _content_type="application/merge-patch+json",
            )  # fmt: skip
            while True:
                listed = await custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "promotions")
                annotated = {
                    p["metadata"]["name"] for p in listed["items"] if ABORT in (p["metadata"].get("annotations") or {})
                }
                if set(names) <= annotated:
                    samples.append(time.perf_counter() - started)
                    break
                if time.perf_counter() - started > 60:
                    raise TimeoutError(f"{len(set(names) - annotated)} Promotions never annotated")
                await asyncio.sleep(0.01)
    finally:
        await api.close()
    return samples


async def _recording_lag(kube: Any, base_url: str, namespace: str, rounds: int) -> list[float]:
    """Per round: a Stage's annotation changes; seconds until policy-server serves that resourceVersion."""
    api, custom, _ = await _clients(kube.kubeconfig)
    samples = []
    try:
        async with httpx.AsyncClient(base_url=base_url, headers=_auth(), timeout=10) as http:
            for i in range(rounds):
                started = time.perf_counter()
                changed = await custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, "stages", "uat", {"metadata": {"annotations": {"bench/round": str(i)}}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
                version = changed["metadata"]["resourceVersion"]
                while True:
                    answer = await http.get(f"/v1/state/Stage/{namespace}/uat")
                    if answer.status_code == 200 and answer.json().get("resource_version") == version:
                        samples.append(time.perf_counter() - started)
                        break
                    if time.perf_counter() - started > 30:
                        raise TimeoutError("a change was never recorded")
                    await asyncio.sleep(0.005)
    finally:
        await api.close()
    return samples


def _review(namespace: str, n: int) -> dict:
    promotion = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Promotion",
        "metadata": {"namespace": namespace, "name": f"prod.{_ulid(1786530000000 + n, n)}.759376c"},
        "spec": {"stage": "prod", "freight": "759376cafc8e421500b205c6eef4f1989c05217f"},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"bench-{n}",
            "kind": {"group": GROUP, "version": VERSION, "kind": "Promotion"},
            "resource": {"group": GROUP, "version": VERSION, "resource": "promotions"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": promotion,
            "userInfo": {"username": "bench@example.com"},
            "dryRun": False,
        },
    }


async def _time_to_ready(kube: Any, stages: int, promotions: int, server: Any, workers: int) -> tuple[float, float]:
    """Create the project in the API server; then (seconds to create it, seconds from start to /ready)."""
    from tests.support.kube import creatable, demo_objects

    namespace = kube.project("bench-ready")
    stage = next(o for o in demo_objects(("Stage",)) if o["metadata"]["name"] == "prod")
    promotion = next(o for o in demo_objects(("Promotion",)) if o["metadata"]["name"].startswith("prod.01kztrdx"))
    api, custom, _ = await _clients(kube.kubeconfig)
    limit = asyncio.Semaphore(32)
    started = time.perf_counter()

    async def create(plural: str, body: dict) -> None:
        async with limit:
            await custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)

    try:
        names = [f"s{i:04d}" for i in range(stages)]
        await asyncio.gather(*(create("stages", _renamed(creatable(stage, namespace), n)) for n in names))
        base = int(datetime(2026, 8, 1, tzinfo=UTC).timestamp() * 1000)
        bodies = []
        for i in range(promotions):
            body = creatable(promotion, namespace)
            stage_name = names[i % stages]
            body["metadata"]["name"] = f"{stage_name}.{_ulid(base + i * 1000, i)}.759376c"
            body["spec"]["stage"] = stage_name
            bodies.append(body)
        for chunk in range(0, len(bodies), 2000):
            await asyncio.gather(*(create("promotions", b) for b in bodies[chunk : chunk + 2000]))
    finally:
        await api.close()
    created = time.perf_counter() - started
    folder = Path(tempfile.mkdtemp(prefix="bench-ready-"))
    started = time.perf_counter()
    with server(
        f"sqlite+aiosqlite:///{folder / 'store.db'}",
        workers,
        watch="true",
        watch_namespaces=namespace,
        kubeconfig=str(kube.kubeconfig),
        enforce="off",
        engine_workers="1",
        ready_timeout=1800,
    ):
        ready = time.perf_counter() - started
    return created, ready


def _renamed(manifest: dict, name: str) -> dict:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"]["name"] = name
    return manifest


_AUTH: dict[str, str] = {}


def _auth() -> dict[str, str]:
    return _AUTH


def cluster_suite(server: Any, wrk: Any, auth: dict[str, str], workers: int, full: bool, seconds: int) -> list[str]:
    """The cluster measurements as report lines (a skip line when no kube-apiserver is available).

    ``server`` and ``wrk`` are bench/run.py's: a policy-server process, and wrk at 16 connections."""
    _AUTH.update(auth)
    from tests.support import kube as kube_support

    try:
        kube_support.binaries()
    except BaseException as exc:  # pytest's skip outside pytest: no kube-apiserver here
        return [f"cluster: skipped ({exc})"]
    rounds, queued = (30, 10) if full else (10, 5)
    lag_rounds = 200 if full else 50
    stages, promotions = (1_000, 100_000) if full else (100, 10_000)
    lines = []
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    kube = kube_support.KubeCluster(folder / "kube")
    kube.start()
    try:
        with _watching_server(server, kube, folder, "on", workers) as url:
            aborts = asyncio.run(_abort_latency(kube, url, rounds, queued))
            p50, p99 = _percentiles(aborts)
            lines.append(
                f"cluster: AnalysisRun Failed in the API server → last of {queued} abort patches applied "
                f"({rounds} rounds): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (goal p99 ≤ 2000 ms)"
            )
            namespace = kube.project("bench-lag")
            _queued_project(kube, namespace, 1)
            _until(lambda: httpx.get(f"{url}/v1/state/Stage/{namespace}/uat", headers=_auth()).status_code == 200)
            lags = asyncio.run(_recording_lag(kube, url, namespace, lag_rounds))
            p50, p99 = _percentiles(lags)
            lines.append(
                f"cluster: object changed in the API server → served by policy-server ({lag_rounds} changes): "
                f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (goal p99 ≤ 1000 ms)"
            )
            bodies = folder / "reviews.ndjson"
            bodies.write_text("\n".join(json.dumps(_review(namespace, n)) for n in range(200)) + "\n")
            health = wrk(f"{url}/health", seconds)
            review = wrk(f"{url}/v1/admission/promotions", seconds, bodies=bodies)
            lines.append(
                f"cluster: admission reviews at 16 connections: {review.requests_per_s:.0f}/s, p50 "
                f"{review.p50_ms:.2f} ms, p99 {review.p99_ms:.2f} ms (goal p99 ≤ 50 ms); GET /health "
                f"{health.requests_per_s:.0f}/s, p99 {health.p99_ms:.2f} ms"
            )
        created, ready = asyncio.run(_time_to_ready(kube, stages, promotions, server, workers))
        lines.append(
            f"cluster: time to ready, a project of {stages:,} Stages and {promotions:,} Promotions: "
            f"{ready:.1f} s from start to /ready (creating them in the API server took {created:.0f} s)"
        )
    finally:
        kube.stop()
    return lines
