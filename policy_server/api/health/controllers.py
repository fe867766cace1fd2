"""``/health`` and ``/ready``: probes for Kubernetes and load balancers."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from policy_server import __version__, metrics
from policy_server.api.params import DatabaseDep
from policy_server.engine import Evaluator
from policy_server.errors import Unavailable
from policy_server.store import Database, current_revision, head_revision


class Health(msgspec.Struct):
    """The process is up."""

    status: str
    version: str


class Check(msgspec.Struct):
    """One readiness check."""

    name: str
    ok: bool
    detail: str


class Readiness(msgspec.Struct):
    """Whether this replica can answer: every check must pass."""

    ready: bool
    checks: list[Check]


class HealthController(Controller):
    """Probes."""

    tags = ["health"]

    @get("/health", operation_id="GetHealth", summary="Liveness: the process answers HTTP")
    async def health(self) -> Health:
        """Liveness: the process answers HTTP."""
        return Health(status="ok", version=__version__)

    @get(
        "/ready",
        operation_id="GetReadiness",
        responses={
            503: ResponseSpec(data_container=Readiness, description="Not ready: a check failed; `checks` says which.")
        },
        summary="Readiness: the database answers and its schema is at the revision this code needs (503 otherwise)",
    )
    async def ready(
        self, database: DatabaseDep, engine: NamedDependency[Evaluator], services: NamedDependency[Any]
    ) -> Response[Readiness]:
        """Readiness: the database answers, its schema is at the revision this code needs, (with
        ``POLICY_SERVER_ENGINE=opa``) every OPA server answers, and (with ``--watch``) the watcher has recorded
        its initial list of every watched kind and namespace (503 otherwise)."""
        checks = [await _database_check(database), *await _engine_checks(engine)]
        if services.settings.watch:
            watching, detail = services.watch_state()
            checks.append(Check(name="watch", ok=watching, detail=detail))
        ready = all(c.ok for c in checks)
        return Response(
            Readiness(ready=ready, checks=checks),
            status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE,
        )


class MetricsController(Controller):
    """Prometheus metrics."""

    tags = ["health"]

    @get("/metrics", operation_id="GetMetrics", summary="Prometheus metrics", media_type="text/plain")
    async def metrics(self) -> Response[bytes]:
        """Decisions by outcome, reasons by policy and code, latencies, engine restarts and failures, OPA pushes,
        ingestion by kind and result, and the decision-log writes in flight (Prometheus text format)."""
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)


async def _engine_checks(engine: Evaluator) -> list[Check]:
    status = await engine.status()
    if not status.servers:
        return [Check(name="engine", ok=status.ready, detail=status.detail)]
    checks = []
    for server in status.servers:
        detail = f"OPA at {server.url}: {'healthy' if server.healthy else 'unreachable'}"
        if server.holds:
            detail += f", holds policy set {server.holds}"
        checks.append(Check(name="engine", ok=server.healthy, detail=detail))
    return checks


async def _database_check(database: Database) -> Check:
    try:
        current = await current_revision(database)
    except Unavailable as exc:
        return Check(name="database", ok=False, detail=exc.detail)
    head = head_revision()
    if current != head:
        return Check(
            name="database",
            ok=False,
            detail=f"schema at {current or 'no revision'}, code needs {head}: run `policy-server db upgrade`",
        )
    return Check(name="database", ok=True, detail=f"reachable, schema at {head}")
