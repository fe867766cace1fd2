"""Where watched state goes: the configured database in this process, or a running server over HTTP.

Both record through the same ingestion rules as ``POST /v1/state`` (newest resourceVersion wins, tombstones).
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx
import msgspec

from policy_server.cluster._resources import WATCHED
from policy_server.errors import InvalidState, Unavailable
from policy_server.kargo import Kind, ObjectKey, parse_body
from policy_server.store import ApplyResult, StateStore

_PATHS = {resource.kind: resource.plural for resource in WATCHED}
"""How ``/v1/state`` names each kind: the API server's plural."""
_encode = msgspec.json.Encoder().encode


class StateSink(Protocol):
    """Records Kubernetes objects and watch events."""

    async def record(self, documents: list[dict[str, Any]]) -> ApplyResult | dict[str, Any]:
        """Record objects and watch events (``{"type", "object"}``) in one transaction."""
        ...

    async def recorded(self, kind: Kind, namespace: str) -> dict[str, str | None]:
        """The live recorded objects of one kind in a namespace: name → resourceVersion."""
        ...

    async def forget(self, kind: Kind, namespace: str, name: str, resource_version: str | None) -> None:
        """Record a deletion (a tombstone at ``resource_version``)."""
        ...


def _ndjson(documents: list[dict[str, Any]]) -> bytes:
    return b"\n".join(_encode(d) for d in documents) + b"\n"


class StoreSink:
    """Into the store, in this process."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def record(self, documents: list[dict[str, Any]]) -> ApplyResult:
        return await self.store.apply(parse_body(_ndjson(documents), "application/x-ndjson"))

    async def recorded(self, kind: Kind, namespace: str) -> dict[str, str | None]:
        return await self.store.live_names(kind, namespace)

    async def forget(self, kind: Kind, namespace: str, name: str, resource_version: str | None) -> None:
        await self.store.delete(ObjectKey(kind, namespace, name), resource_version)


class HttpSink:
    """Into a running server's API, with a controller token."""

    def __init__(self, url: str, token: str | None) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=60)

    async def record(self, documents: list[dict[str, Any]]) -> dict[str, Any]:
        response = await self._send(
            "POST", "/v1/state", content=_ndjson(documents), headers={"content-type": "application/x-ndjson"}
        )
        return response.json()

    async def recorded(self, kind: Kind, namespace: str) -> dict[str, str | None]:
        response = await self._send("GET", f"/v1/state/{_PATHS[kind]}/{namespace}")
        return {item["name"]: item["resource_version"] for item in response.json()}

    async def forget(self, kind: Kind, namespace: str, name: str, resource_version: str | None) -> None:
        params = {"resourceVersion": resource_version} if resource_version else {}
        await self._send("DELETE", f"/v1/state/{_PATHS[kind]}/{namespace}/{name}", params=params, missing_ok=True)

    async def _send(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"policy-server at {self.http.base_url} is unreachable: {exc}") from exc
        if response.status_code == 404 and missing_ok:
            return response
        if response.status_code == 422:
            raise InvalidState(f"policy-server refused {method} {path}: {response.text[:300]}")
        if response.status_code >= 300:
            # A refusal (401/403/422) does not heal by retrying the same request: say it loudly.
            raise Unavailable(
                f"policy-server answered {response.status_code} to {method} {path}: {response.text[:300]}"
            )
        return response

    async def close(self) -> None:
        await self.http.aclose()
