"""policy-server in a Kubernetes cluster: watching Kargo state from the API server.

``Watcher`` lists and watches Stages, Promotions, Freight and AnalysisRuns (``_watch``) into a ``StateSink``
(``_sink``: the store in this process, or a running server over HTTP); ``api_client`` connects with a kubeconfig
or the pod's service account (``_config``). The Kubernetes client is ``kubernetes_asyncio``: asyncio-native like the
rest of the service, generated from the API's own OpenAPI, and it exposes everything informers, patches, Events
and Leases need without a second abstraction over it.
"""

from policy_server.cluster._config import api_client
from policy_server.cluster._resources import PROJECT_LABEL, WATCHED, Resource
from policy_server.cluster._sink import HttpSink, StateSink, StoreSink
from policy_server.cluster._watch import Watcher

__all__ = ["PROJECT_LABEL", "WATCHED", "HttpSink", "Resource", "StateSink", "StoreSink", "Watcher", "api_client"]
