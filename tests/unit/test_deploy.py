"""The production manifests parse and wire together: selectors, ports, probes, config, OPA sidecar, RBAC."""

from __future__ import annotations

import yaml

from policy_server.settings import Settings
from tests.conftest import ROOT


def _objects() -> dict[str, dict]:
    documents = [d for d in yaml.safe_load_all((ROOT / "deploy" / "policy-server.yaml").read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in documents}


def test_every_object_is_a_kubernetes_object():
    for key, obj in _objects().items():
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"], key


def test_the_service_selects_the_deployment_pods_on_the_served_port():
    objects = _objects()
    deployment = objects["Deployment/policy-server"]
    service = objects["Service/policy-server"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    config = objects["ConfigMap/policy-server"]["data"]
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert ports["http"] == int(config["POLICY_SERVER_PORT"])
    assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    assert deployment["spec"]["replicas"] >= 2


def test_config_names_only_real_settings_and_points_at_the_opa_sidecar():
    objects = _objects()
    config = objects["ConfigMap/policy-server"]["data"]
    settings = Settings.from_env(config)
    assert settings.extra == {}, "unknown POLICY_SERVER_* names in the ConfigMap"
    assert settings.engine == "opa"
    pod = objects["Deployment/policy-server"]["spec"]["template"]["spec"]
    opa = next(c for c in pod["containers"] if c["name"] == "opa")
    address = opa["args"][opa["args"].index("--addr") + 1]
    assert settings.opa_url.endswith(address)
    assert opa["image"].endswith(":1.22.3")  # the version the parity suite runs


def test_database_url_comes_from_a_secret_and_migrations_run_first():
    pod = _objects()["Deployment/policy-server"]["spec"]["template"]["spec"]
    for container in pod["initContainers"] + [pod["containers"][0]]:
        env = {e["name"]: e for e in container.get("env", [])}
        assert "secretKeyRef" in env["POLICY_SERVER_DATABASE_URL"]["valueFrom"]
    assert pod["initContainers"][0]["command"][-2:] == ["db", "upgrade"]
    assert pod["serviceAccountName"] == "policy-server"


def test_rbac_binds_the_service_account_to_read_kargo_state():
    objects = _objects()
    binding = objects["ClusterRoleBinding/policy-server"]
    assert binding["roleRef"]["name"] in {k.split("/")[1] for k in objects if k.startswith("ClusterRole/")}
    assert binding["subjects"][0]["name"] == objects["ServiceAccount/policy-server"]["metadata"]["name"]


def test_the_webhook_calls_the_service_over_tls_for_promotion_creation_in_kargo_projects():
    objects = _objects()
    (webhook,) = objects["ValidatingWebhookConfiguration/policy-server"]["webhooks"]
    service = objects["Service/policy-server"]
    target = webhook["clientConfig"]["service"]
    assert (target["name"], target["namespace"]) == (service["metadata"]["name"], service["metadata"]["namespace"])
    assert target["port"] == service["spec"]["ports"][0]["port"]
    assert target["path"] == "/v1/admission/promotions"
    assert webhook["rules"][0]["operations"] == ["CREATE"] and webhook["rules"][0]["resources"] == ["promotions"]
    assert webhook["namespaceSelector"]["matchLabels"] == {"kargo.akuity.io/project": "true"}
    assert webhook["sideEffects"] == "NoneOnDryRun" and webhook["failurePolicy"] in ("Fail", "Ignore")
    config = Settings.from_env(objects["ConfigMap/policy-server"]["data"])
    certificate = objects["Certificate/policy-server-tls"]["spec"]
    pod = objects["Deployment/policy-server"]["spec"]["template"]["spec"]
    mounted = {v["name"]: v for v in pod["volumes"]}["tls"]["secret"]["secretName"]
    assert mounted == certificate["secretName"] and config.tls_cert_file.startswith("/etc/policy-server/tls/")
    assert "policy-server.kargo-policy.svc" in certificate["dnsNames"]
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
