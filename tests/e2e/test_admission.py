"""The admission webhook registered with a real kube-apiserver: `kubectl create` of a Promotion is denied while its
Stage verifies (with the reasons in kubectl's error), allowed afterwards; a server-side dry run logs nothing; and
with the server down the failure policy decides."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.conftest import ADMIN
from tests.e2e.test_watch import _until
from tests.integration.conftest import AR_E, PROD_P7
from tests.support.kube import creatable, demo_objects
from tests.support.tls import self_signed

NEW = "prod.01kzv1n2xq8c3d7e9f0g1h2j3k.759376c"


def _certificate(tmp_path) -> tuple[str, str]:
    cert, key = self_signed(tmp_path, "IP:127.0.0.1")
    return str(cert), str(key)


def _register(kube, namespace: str, url: str, cert: str, failure_policy: str = "Fail") -> None:
    webhook = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"policy-server-{namespace}"},
        "webhooks": [
            {
                "name": "promotions.policy-server.kargo.akuity.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "NoneOnDryRun",
                "failurePolicy": failure_policy,
                "timeoutSeconds": 5,
                "clientConfig": {
                    "url": f"{url}/v1/admission/promotions",
                    "caBundle": base64.b64encode(Path(cert).read_bytes()).decode(),
                },
                "rules": [
                    {
                        "apiGroups": ["kargo.akuity.io"],
                        "apiVersions": ["v1alpha1"],
                        "operations": ["CREATE"],
                        "resources": ["promotions"],
                        "scope": "Namespaced",
                    }
                ],
                # This test's namespace only (deploy/ selects every Kargo project by its label).
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            }
        ],
    }
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(webhook))


def _new_promotion(namespace: str) -> str:
    template = next(o for o in demo_objects(("Promotion",)) if o["metadata"]["name"] == PROD_P7)
    promotion = creatable(template, namespace)
    promotion["metadata"]["name"] = NEW
    promotion["spec"]["freight"] = "759376cafc8e421500b205c6eef4f1989c05217f"
    return json.dumps(promotion)


def _create(kube, namespace: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [kube.kubectl_bin, "create", "-f", "-", *extra],
        input=_new_promotion(namespace),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(kube.kubeconfig)},
    )


def test_creating_a_promotion_is_denied_while_its_stage_verifies_and_allowed_after(server_factory, kube, tmp_path):
    namespace = kube.project()
    for obj in demo_objects():
        kube.create(obj, namespace)
    cert, key = _certificate(tmp_path)
    server = server_factory(
        {
            "POLICY_SERVER_DATA_DIR": str(tmp_path / "data"),
            "POLICY_SERVER_ENGINE_WORKERS": "1",
            "POLICY_SERVER_WATCH": "true",
            "POLICY_SERVER_WATCH_NAMESPACES": namespace,
            "POLICY_SERVER_KUBECONFIG": str(kube.kubeconfig),
            "POLICY_SERVER_ENFORCE": "off",
            "POLICY_SERVER_TLS_CERT_FILE": cert,
            "POLICY_SERVER_TLS_KEY_FILE": key,
        }
    )
    _register(kube, namespace, server.url, cert)
    http = httpx.Client(base_url=server.url, headers=ADMIN, timeout=30, verify=ssl.create_default_context(cafile=cert))

    def logged() -> list[dict]:
        return http.get("/v1/decisions", params={"namespace": namespace, "stage": "prod"}).json()["items"]

    # A server-side dry run is judged the same, and changes nothing: no decision is logged.
    dry = _create(kube, namespace, "--dry-run=server")
    assert dry.returncode != 0 and "verification_in_progress" in dry.stderr
    assert logged() == []

    denied = _create(kube, namespace)
    assert denied.returncode != 0
    assert "denied the request" in denied.stderr
    assert "block-while-verifying" in denied.stderr and "verification_in_progress" in denied.stderr
    assert kube.kubectl("get", "promotions.kargo.akuity.io", NEW, "-n", namespace, check=False) == ""
    (decision,) = logged()
    assert decision["prospective"] and decision["caller"] == "admission (kube-admin)"
    assert decision["allow"] is False

    # The verification ends well: the next creation is allowed.
    kube.patch_status(
        "AnalysisRun", AR_E, namespace, {"phase": "Successful", "completedAt": datetime.now(UTC).isoformat()[:19] + "Z"}
    )
    _until(
        lambda: (
            http.get(f"/v1/state/analysisruns/{namespace}/{AR_E}").json()["object"]["status"]["phase"] == "Successful"
        ),
        "the finished run recorded",
    )
    allowed = _create(kube, namespace)
    assert allowed.returncode == 0, allowed.stderr
    assert NEW in kube.kubectl("get", "promotions.kargo.akuity.io", "-n", namespace, "-o", "name")
    assert [d["allow"] for d in logged()][:1] == [True]
    http.close()


def test_with_the_server_down_the_failure_policy_decides(server_factory, kube, tmp_path):
    namespace = kube.project()
    for obj in demo_objects(("Freight", "Stage")):
        kube.create(obj, namespace)
    cert, key = _certificate(tmp_path)
    server = server_factory(
        {
            "POLICY_SERVER_DATA_DIR": str(tmp_path / "data"),
            "POLICY_SERVER_ENGINE_WORKERS": "1",
            "POLICY_SERVER_TLS_CERT_FILE": cert,
            "POLICY_SERVER_TLS_KEY_FILE": key,
        }
    )
    url = server.url
    server.stop()
    # Fail (deploy/'s choice): nothing is created while policy-server cannot be asked.
    _register(kube, namespace, url, cert, "Fail")
    refused = _create(kube, namespace)
    assert refused.returncode != 0 and "failed calling webhook" in refused.stderr
    # Ignore: creations go through unjudged while it is down.
    _register(kube, namespace, url, cert, "Ignore")
    time.sleep(1)
    assert _create(kube, namespace).returncode == 0
