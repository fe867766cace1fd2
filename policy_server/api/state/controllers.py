"""``/v1/state``: record Kargo objects as Kubernetes serves them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from policy_server import metrics
from policy_server.api.auth import CONTROL, READ, SECURITY, PrincipalDep
from policy_server.api.examples import VerbatimExample, load_json, load_text
from policy_server.api.params import Namespace, SettingsDep, StateStoreDep
from policy_server.api.problems import problem_responses
from policy_server.api.state.schemas import IngestResult, RecordedName, StoredObjectView
from policy_server.errors import InvalidInput, NotFound
from policy_server.kargo import Kind, Limits, ObjectKey, format_time, parse_body
from policy_server.settings import Settings

_KindParam = Annotated[
    str,
    PathParameter(
        description="Kind: `stages`, `promotions`, `freights` or `analysisruns` (singular and `Kind` names work too).",
        examples=[Example(value="promotions")],
    ),
]
_NameParam = Annotated[
    str, PathParameter(description="Object name.", examples=[Example(value="prod.01kztrdxmgg3c76w16pjvk9zds.759376c")])
]


@dataclass
class _IngestOperation(Operation):
    """The ingestion body is raw JSON or NDJSON, read by the handler itself: document it here."""

    def __post_init__(self) -> None:
        any_object = Schema(
            type=OpenAPIType.OBJECT,
            description="A Kubernetes object, a `kind: List`, or a watch event `{type, object}`.",
            additional_properties=True,
        )
        self.request_body = RequestBody(
            required=True,
            description=(
                "Stage, Promotion, Freight (`kargo.akuity.io/v1alpha1`) and AnalysisRun (`argoproj.io/v1alpha1`) "
                "objects exactly as `kubectl get -o json` prints them: one object, a `kind: List`, a watch event, "
                "or with `Content-Type: application/x-ndjson` one object or watch event per line "
                "(`kubectl get -w -o json` output), or with `Content-Type: application/yaml` YAML documents "
                "separated by `---` (`kubectl get -o yaml`, manifests)."
            ),
            content={
                "application/json": OpenAPIMediaType(
                    schema=any_object,
                    examples={
                        "object": VerbatimExample(
                            summary="One Promotion (P6 of kargo-demo)", value=load_json("promotion.json")
                        ),
                        "watch-event": VerbatimExample(
                            summary="A watch event: prod's verification run failed",
                            value=load_json("watch-event.json"),
                        ),
                    },
                ),
                "application/yaml": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, description="YAML documents, separated by `---`."),
                    examples={
                        "object": VerbatimExample(
                            summary="One Promotion, as kubectl get -o yaml prints it", value=load_text("promotion.yaml")
                        )
                    },
                ),
                "application/x-ndjson": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, description="One JSON document per line."),
                    examples={
                        "watch-stream": VerbatimExample(
                            summary="Two watch events, one per line", value=load_text("watch-stream.ndjson")
                        )
                    },
                ),
            },
        )


class StateController(Controller):
    """Record and remove Kargo state."""

    path = "/v1/state"
    tags = ["state"]

    @post(
        "/",
        operation_id="IngestState",
        opt=CONTROL,
        security=SECURITY,
        operation_class=_IngestOperation,
        status_code=HTTP_200_OK,
        responses=problem_responses(413, 422, 503),
        summary="Record Kargo objects: one object, a List, a watch event, or an NDJSON stream of them",
    )
    async def ingest(
        self,
        request: Request[Any, Any, Any],
        state_store: StateStoreDep,
        principal: PrincipalDep,
        settings: SettingsDep,
    ) -> IngestResult:
        """Record Kargo objects: one object, a List, a watch event, or an NDJSON stream of them.

        One request is one transaction: if any item is malformed nothing is stored and the answer is 422
        naming the item and the field. An object older (by `metadata.resourceVersion`) than the stored one
        never overwrites it; a deletion is remembered, so a late, older ADDED cannot revive the object;
        replaying the same data changes nothing.
        """
        body = await request.body()
        if not body.strip():
            raise InvalidInput("the request body is empty: send a Kubernetes object, a List, or watch events")
        items = parse_body(body, request.headers.get("content-type"), limits_of(settings))
        for namespace in sorted({i.obj.key.namespace for i in items if i.obj is not None}):
            principal.require_namespace(namespace)
        result = await state_store.apply(items)
        for (kind, outcome), count in result.by_kind.items():
            metrics.INGESTED.labels(kind, outcome).inc(count)
        return IngestResult(
            items=result.total,
            applied=result.applied,
            unchanged=result.unchanged,
            stale=result.stale,
            deleted=result.deleted,
            skipped=result.skipped,
            skipped_kinds=result.skipped_kinds,
        )

    @get(
        "/{kind:str}/{namespace:str}",
        operation_id="ListStateObjects",
        opt=READ,
        security=SECURITY,
        responses=problem_responses(422, 503),
        summary="List the recorded objects of one kind in a namespace: names and resourceVersions",
    )
    async def list_objects(
        self, state_store: StateStoreDep, principal: PrincipalDep, kind: _KindParam, namespace: Namespace
    ) -> list[RecordedName]:
        """The recorded (not deleted) objects of one kind in a namespace, by name, with the resourceVersion
        recorded: what a watcher compares with a fresh list to find objects deleted while it was away."""
        principal.require_namespace(namespace)
        names = await state_store.live_names(_kind(kind), namespace)
        return [RecordedName(name=name, resource_version=names[name]) for name in sorted(names)]

    @get(
        "/{kind:str}/{namespace:str}/{name:str}",
        operation_id="GetStateObject",
        opt=READ,
        security=SECURITY,
        responses=problem_responses(404, 422),
        summary="Return one recorded object exactly as it was served, with its recorded resourceVersion",
    )
    async def get_object(
        self,
        state_store: StateStoreDep,
        principal: PrincipalDep,
        kind: _KindParam,
        namespace: Namespace,
        name: _NameParam,
    ) -> StoredObjectView:
        """Return one recorded object exactly as it was served, with its recorded resourceVersion."""
        principal.require_namespace(namespace)
        key = ObjectKey(_kind(kind), namespace, name)
        stored = await state_store.get(key)
        if stored is None:
            raise NotFound(f"{key} is not recorded")
        return StoredObjectView(
            kind=key.kind.value,
            namespace=namespace,
            name=name,
            resource_version=stored.resource_version,
            recorded_at=format_time(stored.recorded_at) or "",
            deleted=stored.deleted,
            object=stored.object,
        )

    @delete(
        "/{kind:str}/{namespace:str}/{name:str}",
        operation_id="DeleteStateObject",
        opt=CONTROL,
        security=SECURITY,
        status_code=HTTP_204_NO_CONTENT,
        responses=problem_responses(404, 422, 503),
        summary="Forget a recorded object, as a watch DELETED event would; an older version cannot revive it",
    )
    async def delete_object(
        self,
        state_store: StateStoreDep,
        principal: PrincipalDep,
        kind: _KindParam,
        namespace: Namespace,
        name: _NameParam,
        resource_version: Annotated[
            str | None,
            QueryParameter(
                name="resourceVersion",
                description="The resourceVersion the object was deleted at; default: the recorded one.",
            ),
        ] = None,
    ) -> None:
        """Forget a recorded object, as a watch DELETED event would; an older version cannot revive it."""
        principal.require_namespace(namespace)
        key = ObjectKey(_kind(kind), namespace, name)
        if not await state_store.delete(key, resource_version):
            raise NotFound(f"{key} is not recorded")


def limits_of(settings: Settings) -> Limits:
    """The body limits configured for this service."""
    return Limits(
        max_lines=settings.max_ndjson_lines,
        max_items=settings.max_list_items,
        max_depth=settings.max_json_depth,
        max_string_bytes=settings.max_string_bytes,
    )


def _kind(text: str) -> Kind:
    kind = Kind.from_path(text)
    if kind is None:
        raise InvalidInput(
            f"unknown kind {text!r}: use stages, promotions, freights or analysisruns",
        )
    return kind
