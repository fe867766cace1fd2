"""Leader election on a ``coordination.k8s.io/v1`` Lease: of several replicas, exactly one enforces.

The algorithm client-go's leaderelection uses: read the Lease; take it when it is free or its holder has not
renewed it within ``leaseDurationSeconds``; renew it every ``renew_s`` while leading. Every write carries the
resourceVersion read, so of two replicas racing for an expired Lease the API server lets one win (409 for the
other). A leader that cannot renew before its term ends stops leading (``leading`` turns False) before another
may take over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from policy_server import metrics

log = logging.getLogger("policy_server.lease")


def identity() -> str:
    """This replica's name in the Lease: the pod's (hostname) and the process id."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


class LeaseElector:
    """Holds (or waits for) one Lease; ``leading`` says whether this replica holds it now."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str = "policy-server-enforcer",
        *,
        duration_s: int = 15,
        renew_s: float = 5.0,
        holder: str | None = None,
    ) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self.duration_s = duration_s
        self.renew_s = renew_s
        self.holder = holder or identity()
        self._valid_until = 0.0

    @property
    def leading(self) -> bool:
        """Held and renewed recently enough that no other replica can have taken it."""
        return time.monotonic() < self._valid_until

    async def run(self) -> None:
        """Try to take or renew the Lease every ``renew_s`` (sooner while waiting for it), until cancelled."""
        try:
            while True:
                started = time.monotonic()
                try:
                    if await self._try():
                        self._valid_until = started + self.duration_s - self.renew_s
                    else:
                        self._valid_until = 0.0
                except (ApiException, aiohttp.ClientError, TimeoutError, OSError) as exc:
                    status = getattr(exc, "status", None)
                    if status != 409:  # a lost race is normal; anything else is worth a line
                        log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
                metrics.LEADER.set(1 if self.leading else 0)
                await asyncio.sleep(self.renew_s if self.leading else self.renew_s / 2)
        finally:
            await self._release()

    async def _try(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = await self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            await self.coordination.create_namespaced_lease(self.namespace, self._body(now, transitions=0))
            log.info("took lease %s/%s as %s", self.namespace, self.name, self.holder)
            return True
        spec = lease.spec
        mine = spec.holder_identity == self.holder
        renewed = spec.renew_time or spec.acquire_time
        duration = spec.lease_duration_seconds or self.duration_s
        expired = renewed is None or renewed + timedelta(seconds=duration) < now
        if not mine and spec.holder_identity and not expired:
            return False
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        body = self._body(now, transitions, acquired=spec.acquire_time if mine else now)
        body["metadata"]["resourceVersion"] = lease.metadata.resource_version
        await self.coordination.replace_namespaced_lease(self.name, self.namespace, body)
        if not mine:
            log.info("took lease %s/%s as %s (from %s)", self.namespace, self.name, self.holder, spec.holder_identity)
        return True

    def _body(self, now: datetime, transitions: int, acquired: datetime | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration_s,
                "acquireTime": _micro(acquired or now),
                "renewTime": _micro(now),
                "leaseTransitions": transitions,
            },
        }

    async def _release(self) -> None:
        """Give the Lease up on the way out, so that another replica takes over at once."""
        if not self.leading:
            return
        self._valid_until = 0.0
        metrics.LEADER.set(0)
        try:
            lease = await self.coordination.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity == self.holder:
                body = self._body(datetime.now(UTC), lease.spec.lease_transitions or 0)
                body["spec"]["holderIdentity"] = None
                body["spec"]["leaseDurationSeconds"] = 1
                body["metadata"]["resourceVersion"] = lease.metadata.resource_version
                await self.coordination.replace_namespaced_lease(self.name, self.namespace, body)
        except Exception:  # noqa: BLE001 - best effort: the Lease expires by itself otherwise
            log.info("could not release lease %s/%s; it expires in %d s", self.namespace, self.name, self.duration_s)


def _micro(moment: datetime) -> str:
    """A MicroTime as the API takes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
