"""Connecting to the Kubernetes API with kubernetes_asyncio: a kubeconfig, or the pod's service account."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes_asyncio import client, config

from policy_server.errors import Unavailable

_IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


async def api_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An API client: ``kubeconfig`` (or ``KUBECONFIG``, or ``~/.kube/config``), else the in-cluster account."""
    configuration = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    try:
        if kubeconfig or Path(path.split(os.pathsep)[0]).is_file() or not _IN_CLUSTER_TOKEN.is_file():
            await config.load_kube_config(config_file=path, context=context, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (config.ConfigException, OSError, ValueError) as exc:
        raise Unavailable(f"no Kubernetes API to connect to ({path}): {exc}") from exc
    # Every watch holds a connection for as long as it runs: four per watched namespace. The client's default pool
    # of 100 connections was exhausted by the 25th Kargo project, after which no watch, patch or Lease renewal got
    # a connection and the watcher and the enforcer silently stopped. No limit (aiohttp's 0).
    configuration.connection_pool_maxsize = 0
    return client.ApiClient(configuration)
