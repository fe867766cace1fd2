"""``policy-server watch``: record Kargo state straight from the Kubernetes API, with informer semantics.

One informer per kind and namespace lists with a resourceVersion, records the list, forgets what the store holds
that the list lacks (objects deleted while nobody watched become tombstones), then watches from the list's
resourceVersion with bookmarks. A watch that ends resumes from the last resourceVersion seen; ``410 Gone``
(history compacted) lists again; a lost connection reconnects with backoff. Namespaces are the ones given, or
every namespace labelled ``kargo.akuity.io/project=true``, followed as they appear and disappear.

Watch events go through one writer that records what arrived together in one transaction (the ingestion rules
make the order irrelevant: the newest resourceVersion wins). A batch the store cannot take is retried until it
can; nothing a watch delivered is dropped, except an object the ingestion rules refuse, which is logged.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from policy_server import metrics
from policy_server.cluster._resources import PROJECT_SELECTOR, WATCHED, Resource
from policy_server.cluster._sink import StateSink
from policy_server.errors import InvalidState, PolicyServerError

log = logging.getLogger("policy_server.watch")
_WATCH_SECONDS = 300
_LIST_CHUNK = 500
_BATCH = 500
_BATCH_WINDOW_S = 0.02

Changed = Callable[[list[dict[str, Any]]], Any]
"""Told what was recorded (watch events), after it was recorded: the enforcer listens here."""


class Backoff:
    """Exponential backoff with jitter: 0.5 s doubling to 30 s; reset after a success."""

    def __init__(self, first: float = 0.5, most: float = 30.0) -> None:
        self.first, self.most, self.next = first, most, first

    async def wait(self) -> None:
        await asyncio.sleep(self.next * random.uniform(0.8, 1.2))
        self.next = min(self.next * 2, self.most)

    def reset(self) -> None:
        self.next = self.first


@dataclass
class InformerStatus:
    """What ``/ready`` and logs say about one informer."""

    kind: str
    namespace: str
    listed: bool = False
    resource_version: str | None = None
    error: str | None = None
    relists: int = 0


@dataclass
class _Pending:
    documents: list[dict[str, Any]] = field(default_factory=list)
    observed: list[float] = field(default_factory=list)


class Watcher:
    """Lists and watches the Kargo kinds in the chosen namespaces into a ``StateSink``."""

    def __init__(
        self,
        api: client.ApiClient,
        sink: StateSink,
        namespaces: Sequence[str] | None = None,
        on_change: Changed | None = None,
    ) -> None:
        self.api = api
        self.sink = sink
        self.fixed = tuple(namespaces) if namespaces else None
        self.on_change = on_change
        self.informers: dict[str, list[asyncio.Task[None]]] = {}
        self.status: dict[tuple[str, str], InformerStatus] = {}
        self.namespaces_listed = asyncio.Event()
        self._queue: asyncio.Queue[tuple[dict[str, Any], float]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    # --- readiness ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The namespaces are known and every informer recorded its initial list."""
        return self.namespaces_listed.is_set() and all(s.listed for s in self.status.values())

    def describe(self) -> str:
        """One line for ``/ready``."""
        waiting = [
            f"{s.kind}/{s.namespace}" + (f" ({s.error})" if s.error else "")
            for s in self.status.values()
            if not s.listed
        ]
        if not self.namespaces_listed.is_set():
            return "listing Kargo project namespaces"
        if waiting:
            return "initial list not recorded yet: " + ", ".join(sorted(waiting)[:10])
        return f"watching {len(self.status)} kind/namespace pairs in {len(self.informers)} namespaces"

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Return once ``ready`` (or raise TimeoutError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ready:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(self.describe())
            await asyncio.sleep(0.05)

    # --- running --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch until cancelled."""
        writer = asyncio.create_task(self._write_forever(), name="watch-writer")
        self._tasks.append(writer)
        try:
            if self.fixed is not None:
                for namespace in self.fixed:
                    self._follow(namespace)
                self.namespaces_listed.set()
                await writer
            else:
                await asyncio.gather(writer, self._follow_projects())
        finally:
            for tasks in self.informers.values():
                for task in tasks:
                    task.cancel()
            for task in self._tasks:
                task.cancel()
            everything = [t for tasks in self.informers.values() for t in tasks] + self._tasks
            await asyncio.gather(*everything, return_exceptions=True)

    def _follow(self, namespace: str) -> None:
        if namespace in self.informers:
            return
        log.info("watching namespace %s", namespace)
        tasks = []
        for resource in WATCHED:
            # Known before the task runs: until each has listed, the watcher is not ready.
            status = self.status[(resource.kind.value, namespace)] = InformerStatus(resource.kind.value, namespace)
            name = f"watch-{resource.plural}-{namespace}"
            tasks.append(asyncio.create_task(self._inform(resource, namespace, status), name=name))
        self.informers[namespace] = tasks

    def _unfollow(self, namespace: str) -> None:
        for task in self.informers.pop(namespace, []):
            task.cancel()
        for resource in WATCHED:
            self.status.pop((resource.kind.value, namespace), None)
        log.info("stopped watching namespace %s (no longer a Kargo project)", namespace)

    async def _follow_projects(self) -> None:
        """Follow the namespaces labelled as Kargo projects, as they appear and disappear."""
        core = client.CoreV1Api(self.api)
        backoff = Backoff()
        version: str | None = None
        while True:
            try:
                if version is None:
                    listed = await core.list_namespace(label_selector=PROJECT_SELECTOR)
                    names = {ns.metadata.name for ns in listed.items}
                    for gone in set(self.informers) - names:
                        self._unfollow(gone)
                    for name in sorted(names):
                        self._follow(name)
                    version = listed.metadata.resource_version
                    self.namespaces_listed.set()
                stream = watch.Watch()
                async with stream:
                    async for event in stream.stream(
                        core.list_namespace,
                        label_selector=PROJECT_SELECTOR,
                        resource_version=version,
                        allow_watch_bookmarks=True,
                        timeout_seconds=_WATCH_SECONDS,
                        _request_timeout=_WATCH_SECONDS + 30,
                    ):
                        name = event["raw_object"].get("metadata", {}).get("name")
                        if event["type"] in ("ADDED", "MODIFIED") and name:
                            self._follow(name)
                        elif event["type"] == "DELETED" and name:
                            self._unfollow(name)
                    version = stream.resource_version or version
                backoff.reset()
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                    continue
                log.warning("listing project namespaces failed: %s %s", exc.status, exc.reason)
                await backoff.wait()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("namespace watch lost: %s", exc)
                await backoff.wait()

    async def _inform(self, resource: Resource, namespace: str, status: InformerStatus) -> None:
        """List, reconcile, then watch one kind in one namespace, forever."""
        api = client.CustomObjectsApi(self.api)
        backoff = Backoff()
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._list(api, resource, namespace)
                    status.listed, status.resource_version, status.error = True, version, None
                version = await self._watch(api, resource, namespace, version, status)
                backoff.reset()
            except ApiException as exc:
                if exc.status == 410:
                    # The API server no longer has history from our resourceVersion: list again.
                    metrics.WATCH_RELISTS.labels(resource.kind.value, "gone").inc()
                    status.relists += 1
                    version = None
                    continue
                status.error = f"{exc.status} {exc.reason}"
                log.warning("%s in %s: %s %s", resource.plural, namespace, exc.status, exc.reason)
                await backoff.wait()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status.error = f"connection: {exc}"
                log.warning("watch of %s in %s lost: %s", resource.plural, namespace, exc)
                await backoff.wait()
            except PolicyServerError as exc:
                status.error = exc.detail
                log.warning("recording %s of %s failed: %s", resource.plural, namespace, exc.detail)
                await backoff.wait()

    async def _list(self, api: client.CustomObjectsApi, resource: Resource, namespace: str) -> str:
        """List (in pages), record every object, forget what vanished; the list's resourceVersion."""
        seen: set[str] = set()
        version = ""

        def fetch(token: str | None) -> asyncio.Future[dict[str, Any]]:
            return asyncio.ensure_future(
                api.list_namespaced_custom_object(
                    resource.group, resource.version, namespace, resource.plural, limit=_LIST_CHUNK, _continue=token
                )
            )

        following = fetch(None)
        try:
            while True:
                page = await following
                token = page["metadata"].get("continue")
                if token:
                    following = fetch(token)  # the API server serves the next page while this one is recorded
                items = page.get("items") or []
                for item in items:
                    item.setdefault("apiVersion", resource.api_version)
                    item.setdefault("kind", resource.kind.value)
                    seen.add(item["metadata"]["name"])
                version = page["metadata"]["resourceVersion"]
                if items:
                    await self._record_now(items)
                if not token:
                    break
        finally:
            if not following.done():
                following.cancel()
            elif not following.cancelled():
                following.exception()  # (a failed page not awaited: its error is the one being raised, or moot)
        recorded = await self.sink.recorded(resource.kind, namespace)
        for name in sorted(set(recorded) - seen):
            # Deleted while nobody watched: a tombstone at the list's resourceVersion (newer than the object's).
            await self.sink.forget(resource.kind, namespace, name, version)
            metrics.WATCH_EVENTS.labels(resource.kind.value, "RECONCILED_DELETE").inc()
        metrics.WATCH_RELISTS.labels(resource.kind.value, "list").inc()
        log.info("listed %d %s in %s at resourceVersion %s", len(seen), resource.plural, namespace, version)
        return version

    async def _watch(
        self, api: client.CustomObjectsApi, resource: Resource, namespace: str, version: str, status: InformerStatus
    ) -> str:
        """Watch from ``version`` until the server ends the watch; the last resourceVersion seen."""
        stream = watch.Watch()
        async with stream:
            async for event in stream.stream(
                api.list_namespaced_custom_object,
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=_WATCH_SECONDS,
                _request_timeout=_WATCH_SECONDS + 30,
            ):
                kind = event["type"]
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    document = {"type": kind, "object": event["raw_object"]}
                    metrics.WATCH_EVENTS.labels(resource.kind.value, kind).inc()
                    self._queue.put_nowait((document, time.time()))
                status.resource_version = stream.resource_version or status.resource_version
            return stream.resource_version or version

    # --- recording ------------------------------------------------------------------------------

    async def _record_now(self, documents: list[dict[str, Any]]) -> None:
        """Record documents (a list page) before going on; retried while the store is unavailable."""
        backoff = Backoff()
        while True:
            try:
                await self._record(documents)
                return
            except InvalidState:
                raise
            except PolicyServerError as exc:
                log.warning("recording %d objects failed, retrying: %s", len(documents), exc.detail)
                await backoff.wait()

    async def _record(self, documents: list[dict[str, Any]]) -> None:
        try:
            await self.sink.record(documents)
        except InvalidState as exc:
            if len(documents) == 1:
                log.error("skipped an object the ingestion rules refuse: %s", exc.detail)
                metrics.WATCH_EVENTS.labels("unknown", "REFUSED").inc()
                return
            for document in documents:  # find the one that is refused; record the others
                await self._record([document])

    async def _write_forever(self) -> None:
        """Record watch events as they come, what arrived together in one transaction."""
        while True:
            pending = _Pending()
            document, observed = await self._queue.get()
            pending.documents.append(document)
            pending.observed.append(observed)
            deadline = time.monotonic() + _BATCH_WINDOW_S
            while len(pending.documents) < _BATCH:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    document, observed = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                pending.documents.append(document)
                pending.observed.append(observed)
            await self._record_now(pending.documents)
            now = time.time()
            for document in pending.documents:
                changed = _changed_at(document["object"])
                if changed is not None:
                    metrics.WATCH_LAG.observe(max(0.0, now - changed))
            if self.on_change is not None:
                try:
                    result = self.on_change(pending.documents)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # noqa: BLE001 - a listener's trouble must not stop the recording
                    log.exception("a listener of recorded changes failed")


def _changed_at(obj: dict[str, Any]) -> float | None:
    """When the API server last changed ``obj`` (the newest managedFields time; seconds), if it says."""
    metadata = obj.get("metadata") or {}
    times = [entry.get("time") for entry in metadata.get("managedFields") or [] if entry.get("time")]
    if not times:
        return None
    try:
        return max(datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(UTC).timestamp() for t in times)
    except ValueError:
        return None
