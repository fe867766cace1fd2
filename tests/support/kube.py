"""A real Kubernetes API server for the tests: etcd (Debian's etcd-server) and kube-apiserver (built from the Go
module proxy by ``.ci/kube-apiserver.sh``), with the Kargo and Argo Rollouts CRDs installed; ``kubectl`` drives
Kargo's state changes the way Kargo's controller would.

Nothing here fakes the API server: objects are created, patched (status through the status subresource, as
Kargo's controller writes it) and deleted through the real thing, and the watcher sees what a cluster serves.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.services import missing

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "tests" / "data" / "kubernetes" / "crds"
KUBE_VERSION = "v1.34.4"
ADMIN_TOKEN = "kube-admin-token"
POLICY_SERVER_TOKEN = "pst_test-admin-token"
"""What the API server sends admission webhooks (tests.conftest.ADMIN_TOKEN: every test server's admin)."""
_HOW = "`.ci/kube-apiserver.sh` builds it (Go module proxy) and prints POLICY_SERVER_TEST_KUBE_APISERVER"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def binaries() -> tuple[str, str, str]:
    """(kube-apiserver, etcd, kubectl), or skip (fail in CI) naming what is missing."""
    apiserver = os.environ.get("POLICY_SERVER_TEST_KUBE_APISERVER") or str(
        Path.home() / ".cache" / "policy-server" / f"kube-apiserver-{KUBE_VERSION}"
    )
    if not Path(apiserver).is_file():
        missing("kube-apiserver", f"no kube-apiserver {KUBE_VERSION} binary at {apiserver}", _HOW)
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    if not Path(etcd).is_file():
        missing("etcd", "the etcd command is not installed", "apt-get install etcd-server")
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        missing("kubectl", "the kubectl command is not installed", "apt-get install kubectl")
    if shutil.which("openssl") is None:
        missing("openssl", "the openssl command is not installed", "apt-get install openssl")
    return apiserver, etcd, kubectl


class KubeCluster:
    """etcd + kube-apiserver on loopback ports, a kubeconfig for an admin, and kubectl."""

    def __init__(self, workdir: Path) -> None:
        self.apiserver_bin, self.etcd_bin, self.kubectl_bin = binaries()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.etcd_port, self.peer_port, self.port = _port(), _port(), _port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = self.dir / "kubeconfig"
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None

    # --- processes ------------------------------------------------------------------------------

    def start(self) -> None:
        self._keys()
        self._start_etcd()
        self.start_apiserver()
        self._write_kubeconfig()
        self.kubectl("apply", "--server-side", "-f", str(CRDS))
        self.kubectl("wait", "--for", "condition=established", "--timeout=60s", "crd", "--all")

    def _keys(self) -> None:
        key = self.dir / "sa.key"
        if not key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
            subprocess.run(
                ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(self.dir / "sa.pub")],
                check=True,
                capture_output=True,
            )
        (self.dir / "tokens.csv").write_text(f'{ADMIN_TOKEN},kube-admin,kube-admin-uid,"system:masters"\n')
        # Admission webhooks authenticate to policy-server with a bearer token, as a cluster admin configures it
        # (WebhookAdmissionConfiguration: credentials by webhook host, "*" for any).
        webhook_kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "users": [{"name": "*", "user": {"token": POLICY_SERVER_TOKEN}}],
        }
        (self.dir / "webhook-kubeconfig.json").write_text(json.dumps(webhook_kubeconfig))
        admission = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "AdmissionConfiguration",
            "plugins": [
                {
                    "name": "ValidatingAdmissionWebhook",
                    "configuration": {
                        "apiVersion": "apiserver.config.k8s.io/v1",
                        "kind": "WebhookAdmissionConfiguration",
                        "kubeConfigFile": str(self.dir / "webhook-kubeconfig.json"),
                    },
                }
            ],
        }
        (self.dir / "admission.json").write_text(json.dumps(admission))

    def _start_etcd(self) -> None:
        with (self.dir / "etcd.log").open("ab") as log:
            self._spawn_etcd(log)

    def _spawn_etcd(self, log: Any) -> None:
        self.etcd = subprocess.Popen(
            [
                self.etcd_bin,
                "--data-dir", str(self.dir / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
                "--initial-cluster", f"default=http://127.0.0.1:{self.peer_port}",
                "--unsafe-no-fsync",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def start_apiserver(self) -> None:
        with (self.dir / "apiserver.log").open("ab") as log:
            self._spawn_apiserver(log)
        self._wait_ready()

    def _spawn_apiserver(self, log: Any) -> None:
        self.apiserver = subprocess.Popen(
            [
                self.apiserver_bin,
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.dir / 'certs'}",
                f"--token-auth-file={self.dir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={self.dir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.dir / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--enable-priority-and-fairness=false",
                f"--admission-control-config-file={self.dir / 'admission.json'}",
                "--watch-cache=true",
                "--v=0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _wait_ready(self) -> None:
        assert self.apiserver is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.apiserver.poll() is not None:
                raise RuntimeError(f"kube-apiserver exited: {(self.dir / 'apiserver.log').read_text()[-3000:]}")
            try:
                response = httpx.get(
                    f"{self.url}/readyz", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, verify=False, timeout=2
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"kube-apiserver not ready in 90 s: {(self.dir / 'apiserver.log').read_text()[-3000:]}")

    def stop_apiserver(self) -> None:
        if self.apiserver is not None and self.apiserver.poll() is None:
            self.apiserver.terminate()
            try:
                self.apiserver.wait(20)
            except subprocess.TimeoutExpired:
                self.apiserver.kill()
                self.apiserver.wait()

    def stop(self) -> None:
        self.stop_apiserver()
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.terminate()
            self.etcd.wait(20)

    def _write_kubeconfig(self) -> None:
        ca = self.dir / "certs" / "apiserver.crt"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority": str(ca)}}],
            "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        self.kubeconfig.write_text(json.dumps(config))

    # --- kubectl --------------------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [self.kubectl_bin, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def get(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        return json.loads(self.kubectl("get", kind, "-n", namespace, "-o", "json"))["items"]

    def project(self, prefix: str = "kargo-test") -> str:
        """A new namespace labelled as a Kargo project."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        self.kubectl("label", "namespace", name, "kargo.akuity.io/project=true")
        return name

    def projects(self, count: int, prefix: str = "kargo-many") -> list[str]:
        """``count`` new Kargo project namespaces, created with one request."""
        names = [f"{prefix}-{uuid.uuid4().hex[:8]}" for _ in range(count)]
        labels = {"kargo.akuity.io/project": "true"}
        items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}} for n in names]
        self.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        return names

    def create(self, obj: dict[str, Any], namespace: str) -> None:
        """Create ``obj`` in ``namespace`` as recorded (server fields dropped), then write its status through the
        status subresource, as Kargo's and Argo Rollouts' controllers do."""
        manifest = creatable(obj, namespace)
        status = obj.get("status")
        if obj["kind"] not in _STATUS_SUBRESOURCE and status:
            manifest["status"] = status  # Argo Rollouts' AnalysisRun has no status subresource
        self.kubectl("create", "-f", "-", stdin=json.dumps(manifest))
        if status and obj["kind"] in _STATUS_SUBRESOURCE:
            self.patch_status(obj["kind"], obj["metadata"]["name"], namespace, status)

    def patch_status(self, kind: str, name: str, namespace: str, status: dict[str, Any]) -> None:
        """Change an object's status as its controller does (the status subresource where the CRD has one)."""
        subresource = ["--subresource=status"] if kind in _STATUS_SUBRESOURCE else []
        self.kubectl(
            "patch", _RESOURCES[kind], name, "-n", namespace, *subresource, "--type=merge",
            "--patch", json.dumps({"status": status}),
        )  # fmt: skip


_RESOURCES = {
    "Stage": "stages.kargo.akuity.io",
    "Promotion": "promotions.kargo.akuity.io",
    "Freight": "freights.kargo.akuity.io",
    "AnalysisRun": "analysisruns.argoproj.io",
}
_STATUS_SUBRESOURCE = ("Stage", "Promotion", "Freight")
_SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink")


def creatable(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``obj`` as a manifest to create in ``namespace``: no status, no fields the API server sets."""
    manifest = copy.deepcopy(obj)
    manifest.pop("status", None)
    metadata = manifest["metadata"]
    for name in _SERVER_FIELDS:
        metadata.pop(name, None)
    metadata.pop("ownerReferences", None)
    metadata.pop("finalizers", None)
    metadata["namespace"] = namespace
    return manifest


def demo_objects(kinds: tuple[str, ...] = ("Freight", "Stage", "Promotion", "AnalysisRun")) -> list[dict[str, Any]]:
    """The demo project's objects of ``kinds`` (examples/kargo-demo), in creation order."""
    listing = json.loads((ROOT / "examples" / "kargo-demo" / "list-kargo-demo.json").read_text())
    return [item for kind in kinds for item in listing["items"] if item["kind"] == kind]
