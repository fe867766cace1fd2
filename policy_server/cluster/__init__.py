"""policy-server in a Kubernetes cluster: watching Kargo state from the API server, and enforcing decisions.

``Watcher`` lists and watches Stages, Promotions, Freight and AnalysisRuns (``_watch``) into a ``StateSink``
(``_sink``: the store in this process, or a running server over HTTP); ``api_client`` connects with a kubeconfig
or the pod's service account (``_config``); ``Enforcer`` (``_enforce``) applies the abort actions of Stages that
change, on the replica that holds the ``LeaseElector``'s Lease (``_lease``); of the worker processes of one
server, the one holding the ``WatchTurn`` (``_turn``) watches.

The Kubernetes client is ``kubernetes_asyncio``: asyncio-native like the rest of the service, generated from the
API's own OpenAPI, and it exposes everything informers, patches, Events and Leases need without a second
abstraction over it.
"""

from policy_server.cluster._config import api_client
from policy_server.cluster._enforce import Enforcer
from policy_server.cluster._lease import LeaseElector, identity
from policy_server.cluster._resources import PROJECT_LABEL, WATCHED, Resource
from policy_server.cluster._sink import HttpSink, StateSink, StoreSink
from policy_server.cluster._turn import WatchTurn, shared_turn
from policy_server.cluster._watch import Watcher

__all__ = [
    "PROJECT_LABEL",
    "WATCHED",
    "Enforcer",
    "HttpSink",
    "LeaseElector",
    "Resource",
    "StateSink",
    "StoreSink",
    "WatchTurn",
    "Watcher",
    "api_client",
    "identity",
    "shared_turn",
]
