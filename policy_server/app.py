"""The application factory: ``create_app()`` builds a Litestar app wired by one plugin."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import logging
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse, Reference, Tag
from litestar.plugins import InitPluginProtocol
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_302_FOUND
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from policy_server import __version__
from policy_server.api.access.controllers import AccessController
from policy_server.api.admission.controllers import AdmissionController
from policy_server.api.auth import SECURITY_COMPONENTS, RateLimiter, authorizer, current_principal
from policy_server.api.decisions.controllers import DecisionsController
from policy_server.api.examples import VerbatimExample, load_json
from policy_server.api.health.controllers import HealthController, MetricsController
from policy_server.api.policies.controllers import EvaluateController, PoliciesController
from policy_server.api.policies.impact import ImpactController
from policy_server.api.problems import EXCEPTION_HANDLERS, PROBLEM_MEDIA_TYPE
from policy_server.api.requests import (
    DEPTH_LIMIT_KEY,
    SIGNATURES_KEY,
    PolicyServerRequest,
    handler_signatures,
    reject_unknown_query_parameters,
)
from policy_server.api.stages.controllers import NamespacesController, StagesController
from policy_server.api.state.controllers import StateController
from policy_server.api.ui import ui_router
from policy_server.engine import Evaluator, OpaCli, OpaEvaluator, PoolLimits, RegopyEvaluator, Workbench, WorkerPool
from policy_server.logs import configure as configure_logging
from policy_server.service import PolicyService
from policy_server.service.access import AccessService
from policy_server.service.decisions import DecisionService, DecisionSettings
from policy_server.service.precompute import Precomputer
from policy_server.settings import Settings
from policy_server.store import (
    AccessStore,
    Database,
    DecisionStore,
    PolicyStore,
    StateStore,
    VerdictStore,
    current_revision,
    head_revision,
    upgrade,
)

DOCS_PATH = "/docs"
_ASSETS = f"{DOCS_PATH}/assets"
_log = logging.getLogger("policy_server")

TAGS = [
    Tag(
        name="decisions",
        description="May this Promotion start? Answers with reasons and abort actions, start claims, and the "
        "browsable decision log (why is my Promotion pending?).",
    ),
    Tag(name="state", description="Record Kargo state (Stages, Promotions, Freight, AnalysisRuns) and read it back."),
    Tag(
        name="policies",
        description="Write, validate, test, version and roll back Rego policies; try them on input documents.",
    ),
    Tag(
        name="admission",
        description="The Kubernetes admission webhook for Promotion creation (AdmissionReview admission.k8s.io/v1).",
    ),
    Tag(name="access", description="Tokens (roles, namespace scopes) and the audit trail: admin only."),
    Tag(name="health", description="Liveness, readiness and metrics."),
]


if TYPE_CHECKING:
    from policy_server.cluster import Enforcer, Watcher, WatchTurn


class Services:
    """What request handlers need, created when the app starts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = Database(
            settings.effective_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        self.state_store = StateStore(self.database)
        self.engine = decision_engine(settings)
        self.workbench = workbench(settings)
        self.policy_service = PolicyService(
            PolicyStore(self.database),
            self.engine,
            self.workbench,
            builtins=Path(settings.policies_dir) if settings.policies_dir else None,
            refresh_s=settings.policy_refresh_ms / 1000,
            audit=AccessStore(self.database),
        )
        self.access_service = AccessService(AccessStore(self.database), enabled=settings.auth == "enabled")
        self.watcher: Watcher | None = None
        self.enforcer: Enforcer | None = None
        self.turn: WatchTurn | None = None
        if settings.watch:
            from policy_server.cluster import shared_turn

            self.turn = shared_turn()
        """With several workers: the lock that lets one of them watch (None: this process watches alone)."""
        self.verdict_store = VerdictStore(self.database)
        self.decision_service = DecisionService(
            self.state_store,
            DecisionStore(self.database),
            self.policy_service,
            DecisionSettings(
                claim_ttl_s=settings.claim_ttl_s,
                cache_ttl_s=settings.decision_cache_ms / 1000,
                cache_entries=settings.decision_cache_entries,
                max_input_bytes=settings.max_input_bytes,
            ),
            verdicts=self.verdict_store if settings.precompute else None,
        )
        self.precomputer: Precomputer | None = None
        if settings.precompute and settings.decision_cache_ms > 0:
            self.precomputer = Precomputer(
                self.decision_service,
                self.state_store,
                self.verdict_store,
                depth=max(0, settings.precompute_depth),
                ready=(lambda: self.watch_state()[0]) if settings.watch else None,
            )
            self.state_store.listeners.append(self.precomputer.changed)

    async def start(self) -> None:
        """Migrate (when configured), start the Rego workers, load the built-in policies."""
        if self.settings.should_auto_migrate:
            await upgrade(self.database)
        await self.engine.start()  # the authoring workers start with the first authoring request
        if not self.access_service.enabled:
            _log.warning("AUTHENTICATION IS DISABLED (POLICY_SERVER_AUTH=disabled): anyone reaching this port is admin")
        if await current_revision(self.database) == head_revision():
            await self.policy_service.load_builtins()
            await bootstrap_admin(self.access_service, self.settings)
        else:
            # Serve anyway: /ready says what is wrong, and built-ins load once the schema is upgraded.
            _log.error("database schema is not at %s: run `policy-server db upgrade`", head_revision())

    def watch_state(self) -> tuple[bool, str]:
        """Whether the watch has recorded its initial list, and what ``/ready`` says of it: this process's
        watcher, or what the worker of this server holding the watch published."""
        if self.watcher is not None:
            return self.watcher.ready, self.watcher.describe()
        if self.turn is not None and not self.turn.held:
            return self.turn.read()
        return False, "connecting to the Kubernetes API"

    async def watch_forever(self) -> None:
        """With ``watch`` on: record Kargo state straight from the Kubernetes API into this server's store, and
        (``enforce`` not off) take on the abort actions of the Stages that change, while holding the Lease. Of the
        workers of one server, one does (``turn``); the others take over if it dies."""
        if self.turn is not None:
            await self.turn.take()
            _log.info("this worker (pid %d) watches for the server", os.getpid())
            publishing = asyncio.create_task(self._publish_watch(self.turn))
            try:
                await self._watch()
            finally:
                publishing.cancel()
                self.turn.release()
        else:
            await self._watch()

    async def _publish_watch(self, turn: WatchTurn) -> None:
        while True:
            turn.publish(*self.watch_state())
            await asyncio.sleep(1.0)

    async def _watch(self) -> None:
        from policy_server.cluster import Enforcer, LeaseElector, StoreSink, Watcher, api_client, identity

        settings = self.settings
        api = await api_client(settings.kubeconfig or None)
        tasks: list[asyncio.Task[None]] = []
        enforcer = None
        if settings.enforce != "off":
            me = identity()
            elector = LeaseElector(api, settings.lease_namespace or _pod_namespace(), holder=me)
            enforcer = Enforcer(
                api,
                self.decision_service,
                self.state_store,
                AccessStore(self.database),
                settings.enforce,
                leadership=elector,
                identity=me,
            )
            self.enforcer = enforcer
            tasks += [asyncio.create_task(elector.run()), asyncio.create_task(enforcer.run())]
        self.watcher = Watcher(
            api,
            StoreSink(self.state_store),
            settings.namespaces_to_watch,
            on_change=enforcer.notice if enforcer is not None else None,
        )
        try:
            await self.watcher.run()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await api.close()

    async def prune_forever(self) -> None:
        """Delete decisions older than the retention, and precomputed verdicts that can no longer answer (older than
        it, or computed at state versions since moved on), now and every ``prune_interval_s``, in small batches."""
        while True:
            cutoff = datetime.now(UTC) - timedelta(hours=self.settings.decision_retention_hours)
            try:
                removed = await self.decision_service.decisions.prune(cutoff)
                outlived = await self.verdict_store.prune(int(cutoff.timestamp()) * 1_000_000_000)
                _log.debug("pruned %d precomputed verdicts that can no longer answer", outlived)
                if removed:
                    _log.info("pruned %d decisions older than %s", removed, cutoff.isoformat())
            except Exception:  # noqa: BLE001 - a failed round is retried at the next interval
                _log.warning("pruning the decision log failed", exc_info=True)
            await asyncio.sleep(self.settings.prune_interval_s)

    async def stop(self) -> None:
        """Finish pending decision-log writes, stop workers and close connections."""
        await self.decision_service.log.close()
        await self.engine.close()
        await self.workbench.close()
        await self.database.dispose()


def _report_end(task: asyncio.Task[None]) -> None:
    """A background task (watcher, pruner) that ends other than by cancellation is an error worth a line."""
    if not task.cancelled() and task.exception() is not None:
        _log.error("background task %s stopped: %s", task.get_name(), task.exception(), exc_info=task.exception())


def _pod_namespace() -> str:
    """The namespace this pod runs in (its service account says), else ``default``."""
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return os.environ.get("POD_NAMESPACE") or (path.read_text().strip() if path.is_file() else "default")


def decision_engine(settings: Settings) -> Evaluator:
    """The engine that answers decisions, chosen once: regopy workers (embedded) or OPA servers."""
    if settings.engine == "opa":
        urls = [u for u in settings.opa_url.split(",") if u.strip()]
        return OpaEvaluator(urls, timeout_s=settings.evaluation_timeout_ms / 1000)
    workers = settings.engine_workers or min(os.cpu_count() or 1, 4)
    limits = PoolLimits(
        timeout_s=settings.evaluation_timeout_ms / 1000,
        memory_bytes=settings.engine_memory_mb * 1024 * 1024,
        recycle_bytes=min(settings.engine_recycle_mb, settings.engine_memory_mb // 2) * 1024 * 1024,
        wait_s=settings.evaluation_queue_timeout_ms / 1000,
    )
    return RegopyEvaluator(WorkerPool(workers, limits, name="decisions"))


def workbench(settings: Settings) -> Workbench:
    """Authoring capacity (checks, tests, drafts): worker processes of its own, at a lower CPU priority."""
    limits = PoolLimits(
        timeout_s=settings.evaluation_timeout_ms / 1000,
        memory_bytes=settings.engine_memory_mb * 1024 * 1024,
        compile_timeout_s=settings.authoring_timeout_ms / 1000,
        recycle_bytes=min(settings.engine_recycle_mb, settings.engine_memory_mb // 2) * 1024 * 1024,
        wait_s=settings.authoring_timeout_ms / 1000,
    )
    pool = WorkerPool(settings.authoring_workers, limits, name="authoring", warm_zygote=False, nice=10)
    opa_cli = (
        OpaCli(settings.opa_binary, timeout_s=settings.authoring_timeout_ms / 1000) if settings.opa_binary else None
    )
    return Workbench(pool, opa_cli=opa_cli, max_waiting=settings.authoring_queue)


async def bootstrap_admin(access: AccessService, settings: Settings) -> None:
    """First start: with no token at all, create the admin token and show a generated secret once. Later starts
    say how to get an admin token back, since the secret is never shown again."""
    generated = await access.bootstrap(settings.bootstrap_token or None)
    if generated:
        print(  # noqa: T201 - shown once, on purpose, to whoever starts the service
            f"\npolicy-server created the admin token `bootstrap-admin`; its secret (shown only now):\n\n"
            f"    {generated}\n\n"
            "Use it as `Authorization: Bearer <secret>`; create others with `policy-server tokens create`.\n",
            file=sys.stderr,
            flush=True,
        )
    elif access.enabled and not settings.bootstrap_token:
        print(  # noqa: T201 - a hint for whoever starts the service
            "policy-server: tokens exist; secrets are shown only when created. To get a new admin token, run "
            "`policy-server tokens create --name <name> --role admin` with this server's database settings.",
            file=sys.stderr,
            flush=True,
        )


class PolicyServerPlugin(InitPluginProtocol):
    """Wires routes, services, error handling and the offline API docs into the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.settings
        holder: dict[str, Services] = {}

        @contextlib.asynccontextmanager
        async def lifespan(_app: Litestar) -> AsyncIterator[None]:
            services = Services(settings)
            holder["services"] = services
            background: list[asyncio.Task[None]] = []
            try:
                await services.start()
                # What start-up made lives as long as the process: out of the collector's way. A full collection
                # walked it all (~120 ms, the decisions' p99); now only what requests make since.
                gc.collect()
                gc.freeze()
                background.append(asyncio.create_task(services.prune_forever()))
                if services.precomputer is not None:
                    background.append(asyncio.create_task(services.precomputer.run(), name="precompute"))
                if settings.watch:
                    background.append(asyncio.create_task(services.watch_forever(), name="watcher"))
                for task in background:
                    task.add_done_callback(_report_end)
                yield
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await services.stop()

        def provide(name: str) -> Provide:
            return Provide(lambda: getattr(holder["services"], name), sync_to_thread=False)

        app_config.route_handlers.extend(
            [
                HealthController,
                MetricsController,
                StateController,
                NamespacesController,
                StagesController,
                PoliciesController,
                ImpactController,
                DecisionsController,
                AdmissionController,
                AccessController,
                EvaluateController,
                _root,
                _favicon,
                _swagger_assets(),
                ui_router(),
            ]
        )
        app_config.lifespan.append(lifespan)
        app_config.dependencies.update(
            {
                "settings": Provide(lambda: settings, sync_to_thread=False),
                "database": provide("database"),
                "state_store": provide("state_store"),
                "policy_service": provide("policy_service"),
                "decision_service": provide("decision_service"),
                "engine": provide("engine"),
                "workbench": provide("workbench"),
                "access_service": provide("access_service"),
                "services": Provide(lambda: holder["services"], sync_to_thread=False),
                "principal": Provide(current_principal, sync_to_thread=False),
            }
        )
        app_config.exception_handlers.update(EXCEPTION_HANDLERS)  # type: ignore[arg-type]
        authorize = authorizer(
            lambda: holder["services"].access_service,
            {
                "control": RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
                "author": RateLimiter(settings.authoring_rate_limit_per_s, settings.authoring_rate_limit_burst),
            },
        )

        async def before_request(request: Request[Any, Any, Any]) -> Response[None] | None:
            answer = await authorize(request)
            if answer is None:
                reject_unknown_query_parameters(request)
            return answer

        app_config.before_request = before_request
        app_config.openapi_config = openapi_config()
        return app_config


def openapi_config() -> OpenAPIConfig:
    """The OpenAPI document and its docs UI, served from the swagger-ui-py package (no CDN)."""
    return OpenAPIConfig(
        title="policy-server",
        version=__version__,
        description=(
            "Policy as code for Kargo promotions. policy-server records Kargo state exactly as Kubernetes "
            "serves it, evaluates Rego policies against it and answers whether a Promotion may start."
        ),
        tags=TAGS,
        components=SECURITY_COMPONENTS,
        path=DOCS_PATH,
        use_handler_docstrings=True,
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=f"{_ASSETS}/swagger-ui-bundle.js",
                css_url=f"{_ASSETS}/swagger-ui.css",
                standalone_preset_js_url=f"{_ASSETS}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{_ASSETS}/favicon-32x32.png'>",
            )
        ],
    )


def _swagger_assets():  # type: ignore[no-untyped-def]
    # Swagger UI 5 (OpenAPI 3.1) as shipped in the swagger-ui-py wheel; found without importing the package.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: the docs UI cannot be served")
    return create_static_files_router(
        path=_ASSETS,
        directories=[Path(next(iter(spec.submodule_search_locations))) / "static"],
        include_in_schema=False,
        name="swagger-assets",
    )


@get("/", include_in_schema=False)
async def _root() -> Response[None]:
    return Response(None, status_code=HTTP_302_FOUND, headers={"Location": f"{DOCS_PATH}/"})


@get("/favicon.ico", include_in_schema=False, media_type="image/png")
async def _favicon() -> Response[bytes]:
    # The docs' icon, so that a browser's request for it is not a problem document.
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations
    icon = Path(next(iter(spec.submodule_search_locations))) / "static" / "favicon-32x32.png"
    return Response(icon.read_bytes(), media_type="image/png", headers={"Cache-Control": "max-age=86400"})


def head_as_get(app: ASGIApp) -> ASGIApp:
    """``HEAD`` on any ``GET`` route answers its headers without the body (HTTP semantics; the framework would
    answer 405 for every route that does not declare HEAD)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await app({**scope, "method": "GET"}, receive, headers_only)

    return middleware


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the app from ``settings`` (default: the environment)."""
    settings = settings or Settings.from_env()
    if os.environ.get("POLICY_SERVER_CONFIGURE_LOGGING") == "1":
        configure_logging(settings.log_level, settings.log_format)
    # The body limit goes to the constructor: Litestar ignores a plugin's change of it.
    app = Litestar(
        plugins=[PolicyServerPlugin(settings)],
        request_max_body_size=settings.max_body_bytes,
        request_class=PolicyServerRequest,
        state=State({DEPTH_LIMIT_KEY: settings.max_json_depth}),
        # Logging is ours (policy_server.logs): Litestar would otherwise install its own format.
        logging_config=None,
        debug=False,
    )
    limited = {
        handler.operation_id
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if getattr(handler, "opt", {}).get("capability") in ("control", "author")
    }
    _document_problems(app.openapi_schema, limited)
    _document_bodies(app)
    _document_answers(app.openapi_schema)
    app.state[SIGNATURES_KEY] = handler_signatures(app)
    app.asgi_handler = head_as_get(app.asgi_handler)  # before routing: the router answers 405 to HEAD
    return app


_PROBLEMS = {
    "401": "No token, or an unknown or revoked one.",
    "403": "The token's role or namespaces do not allow this call.",
    "422": "The request is malformed; `errors` says where. Nothing was changed.",
    "429": "Too many requests for this token; `Retry-After` says when to try again.",
}


def _document_problems(schema: OpenAPI, rate_limited: set[str | None]) -> None:
    """Every answer an operation can give, in one place: 422 instead of Litestar's 400, and 401/403 on every
    secured operation (429 where rate limited)."""
    for path in (schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path, method, None)
            if operation is None or operation.responses is None:
                continue
            statuses = []
            if operation.responses.pop("400", None) is not None:
                statuses.append("422")
            if operation.security:
                statuses += ["401", "403"]
            if operation.operation_id in rate_limited:
                statuses.append("429")
            for status in statuses:
                operation.responses.setdefault(status, _problem(_PROBLEMS[status]))


def _document_bodies(app: Litestar) -> None:
    """What the served schema must say of bodies so that clients can trust it: a struct that refuses unknown
    fields says `additionalProperties: false`, and an optional body is not `required`."""
    schema = app.openapi_schema
    components = (schema.components.schemas or {}) if schema.components else {}
    for name, cls in _structs(msgspec.Struct).items():
        component = components.get(name)
        if component is not None and cls.__struct_config__.forbid_unknown_fields:
            component.additional_properties = False
    optional = {
        handler.operation_id
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if (data := handler.parsed_fn_signature.parameters.get("data")) is not None and data.default is None
    }
    for path in (schema.paths or {}).values():
        for method in ("post", "put", "patch"):
            operation = getattr(path, method, None)
            if operation is not None and operation.operation_id in optional and operation.request_body is not None:
                operation.request_body.required = False
        # A query filter's example goes into its description: the docs' "Try it out" fills examples in as
        # values, and a browse would then start filtered by them.
        for parameter in (path.get.parameters or []) if path.get is not None else []:
            if getattr(parameter, "param_in", None) == "query" and parameter.examples:
                values = [getattr(e, "value", None) for e in parameter.examples.values()]
                shown = ", ".join(f"`{v}`" for v in values if v is not None)
                parameter.description = f"{parameter.description or ''} For example {shown}.".strip()
                parameter.examples = None
                if parameter.schema is not None and hasattr(parameter.schema, "examples"):
                    parameter.schema.examples = None


def _document_answers(schema: OpenAPI) -> None:
    """Every success response shows a real answer, captured on the demo project (``make examples``)."""
    captured = load_json("responses.json")
    for path in (schema.paths or {}).values():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(path, method, None)
            if operation is None or operation.responses is None:
                continue
            for status, by_type in captured.get(operation.operation_id, {}).items():
                response = operation.responses.get(status)
                content = getattr(response, "content", None) or {}
                for media_type, value in by_type.items():
                    if media_type in content:
                        content[media_type].examples = {
                            "kargo-demo": VerbatimExample(
                                summary="An answer on the demo project (examples/kargo-demo)", value=value
                            )
                        }


def _structs(base: type) -> dict[str, type]:
    """Every msgspec Struct of the API, by name."""
    out: dict[str, type] = {}
    for cls in base.__subclasses__():
        if cls.__module__.startswith("policy_server.api"):
            out[cls.__name__] = cls
        out.update(_structs(cls))
    return out


def _problem(description: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=Reference("#/components/schemas/Problem"))},
    )
