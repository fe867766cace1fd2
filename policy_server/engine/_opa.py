"""The scale-out evaluator: real OPA servers, fed and queried through opa-python-client.

Each OPA server holds one policy set at a time, pushed as modules under ``policy_server/``. Every answer
carries the key of the bundle that produced it (the generated wrapper embeds it), so an answer from an OPA
that restarted (empty) or holds another set is detected, the set is pushed again, and the question asked
once more; if that fails too the policy fails closed with ``engine_unavailable``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from opa_client.opa_async import AsyncOpaClient

from policy_server import metrics
from policy_server.engine._codes import ENGINE_UNAVAILABLE, EVALUATION_ERROR, POLICY_UNPREPARED
from policy_server.engine._model import (
    Bundle,
    EngineStatus,
    Failure,
    PolicyCall,
    PolicyOutcome,
    ServerStatus,
)
from policy_server.engine._regopy import outcome_from_value, shared_document

_log = logging.getLogger("policy_server.engine.opa")
_PREFIX = "policy_server/"


class OpaUnavailable(Exception):
    """An OPA server did not answer, answered an error, or holds other policies than it should."""


class _Server:
    """One OPA server and the bundle it was last given."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        self.url = f"{parts.scheme}://{parts.hostname}:{parts.port or 8181}"
        self.client = AsyncOpaClient(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 8181,
            ssl=parts.scheme == "https",
            timeout=timeout_s,
            retries=0,
        )
        self.loaded: str | None = None
        self.pushes = 0
        self.push_failures = 0
        self._lock = asyncio.Lock()
        self._open = False

    async def open(self) -> None:
        if not self._open:
            await self.client._init_session()  # the client's own session setup (its __aenter__)
            self._open = True

    async def close(self) -> None:
        if self._open:
            await self.client.close_connection()
            self._open = False

    async def ensure(self, bundle: Bundle, *, force: bool = False) -> None:
        """Push ``bundle`` unless this server already holds it."""
        if self.loaded == bundle.key and not force:
            return
        async with self._lock:
            if self.loaded == bundle.key and not force:
                return
            try:
                await self._push(bundle)
            except Exception as exc:
                self.push_failures += 1
                metrics.OPA_PUSHES.labels("failed").inc()
                self.loaded = None
                raise OpaUnavailable(f"pushing policies to OPA at {self.url} failed: {_text(exc)}") from exc
            self.loaded = bundle.key
            self.pushes += 1
            metrics.OPA_PUSHES.labels("ok").inc()

    async def _push(self, bundle: Bundle) -> None:
        wanted = {_PREFIX + m.name: m.source for m in bundle.modules}
        wanted[_PREFIX + _ALL + ".rego"] = all_module(bundle)
        present = [p for p in await self.client.get_policies_list() if p.startswith(_PREFIX)]
        # Wrappers last: once a wrapper answers with the new key, the modules it reads are in place.
        ordered = sorted(wanted, key=lambda name: name.startswith(_PREFIX + "policy_server/entry/"))
        for name in ordered:
            await self.client.update_policy_from_string(wanted[name], name, rego_compat=False)
        for name in present:
            if name not in wanted:
                await self.client.delete_policy(name)

    async def query(self, entrypoint: str, document: dict[str, Any]) -> Any:
        """The value at ``entrypoint`` for ``document`` (None when undefined)."""
        package, _, rule = entrypoint.rpartition("/")
        try:
            answer = await self.client.query_rule(document, package, rule)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status is not None and 400 <= status < 500 or status == 500:
                raise _EvaluationError(f"OPA answered {status}: {_text(exc)}") from exc
            raise OpaUnavailable(f"OPA at {self.url} did not answer: {_text(exc)}") from exc
        return answer.get("result")

    async def healthy(self) -> bool:
        try:
            return await self.client.check_health()
        except Exception:  # noqa: BLE001 - unhealthy is the answer
            return False


class _EvaluationError(Exception):
    """OPA evaluated and failed (a Rego runtime error): not an availability problem."""


class OpaEvaluator:
    """Evaluates the active policy set on OPA servers (round robin). Only the active set is ever pushed:
    drafts, checks and tests run on the authoring workers (``Workbench``), never on these servers."""

    name = "opa"

    def __init__(self, urls: Sequence[str], *, timeout_s: float = 2.0) -> None:
        if not urls:
            raise ValueError("POLICY_SERVER_OPA_URL names no OPA server")
        self.servers = [_Server(u.strip(), timeout_s) for u in urls if u.strip()]
        self._next = itertools.cycle(range(len(self.servers)))

    async def start(self) -> None:
        for server in self.servers:
            await server.open()

    async def close(self) -> None:
        for server in self.servers:
            await server.close()

    async def status(self) -> EngineStatus:
        """Ready when every OPA server answers its health check."""
        servers = tuple([ServerStatus(s.url, await s.healthy(), s.loaded) for s in self.servers])
        ready = all(s.healthy for s in servers)
        return EngineStatus(self.name, ready, f"{sum(s.healthy for s in servers)}/{len(servers)} OPA servers healthy",
                            servers)  # fmt: skip

    async def evaluate(self, bundle: Bundle, calls: Sequence[PolicyCall]) -> list[PolicyOutcome]:
        """Evaluate each policy on its input on one OPA server; any failure is an outcome, never raised.

        A policy that cannot be prepared (``bundle.unprepared``) fails alone; the others are evaluated.
        """
        if not calls:
            return []
        failed = {pid: PolicyOutcome(pid, failure=Failure(POLICY_UNPREPARED, why))
                  for pid, why in bundle.unprepared.items()}  # fmt: skip
        ready = [call for call in calls if call[0] not in failed]
        server = self.servers[next(self._next)]
        try:
            outcomes = await self._evaluate_on(server, bundle, ready) if ready else []
        except OpaUnavailable as exc:
            _log.warning("%s", exc)
            outcomes = [PolicyOutcome(pid, failure=Failure(ENGINE_UNAVAILABLE, str(exc))) for pid, _ in ready]
        answered = iter(outcomes)
        return [failed[pid] if pid in failed else next(answered) for pid, _ in calls]

    async def _evaluate_on(self, server: _Server, bundle: Bundle, calls: Sequence[PolicyCall]) -> list[PolicyOutcome]:
        await server.ensure(bundle)
        for attempt in range(2):
            answers = await self._answers(server, bundle, calls)
            stale = [a for a in answers if isinstance(a, dict) and a.get("bundle") != bundle.key or a is None]
            unavailable = [a for a in answers if isinstance(a, OpaUnavailable)]
            if unavailable:
                raise unavailable[0]
            if not stale:
                break
            if attempt == 0:
                # Restarted (empty) or changed by someone else: push our set again and ask again.
                await server.ensure(bundle, force=True)
        else:
            raise OpaUnavailable(f"OPA at {server.url} does not hold policy set {bundle.key} after a push")
        outcomes = []
        for (pid, _), answer in zip(calls, answers, strict=True):
            if isinstance(answer, _EvaluationError):
                outcomes.append(PolicyOutcome(pid, failure=Failure(EVALUATION_ERROR, str(answer))))
            elif isinstance(answer, BaseException):
                outcomes.append(PolicyOutcome(pid, failure=Failure(EVALUATION_ERROR, _text(answer))))
            else:
                outcomes.append(outcome_from_value(pid, answer))
        return outcomes

    async def _answers(self, server: _Server, bundle: Bundle, calls: Sequence[PolicyCall]) -> list[Any]:
        """Each policy's value (or the exception asking raised). Calls that share their document are asked in
        one request, each policy under its own parameters; a runtime error there is asked again per policy, so
        that one failing policy does not fail the others."""
        shared = shared_document(calls) if len(calls) > 1 else None
        if shared is not None:
            names = {pid: _entry_name(bundle.entrypoints[pid]) for pid, _ in calls}
            document = {**shared, _PARAMETERS: {names[pid]: doc["parameters"] for pid, doc in calls}}
            try:
                combined = await server.query(f"{_PREFIX}{_ALL}/result", document)
            except _EvaluationError:
                combined = False
            if combined is None or isinstance(combined, dict):
                return [(combined or {}).get(names[pid]) for pid, _ in calls]
        return await asyncio.gather(
            *(server.query(bundle.entrypoints[pid], doc) for pid, doc in calls), return_exceptions=True
        )


_ALL = "entry/combined"
_PARAMETERS = "policy_server_parameters"


def _entry_name(entrypoint: str) -> str:
    """``policy_server/entry/e3/result`` -> ``e3``."""
    return entrypoint.split("/")[-2]


def all_module(bundle: Bundle) -> str:
    """One rule answering every policy of ``bundle`` at once, each on the shared document with its own
    ``parameters`` (OPA only: regopy crashes on ``with input``). The input each policy sees is exactly the one it
    would see when asked alone."""
    rules = []
    for entrypoint in bundle.entrypoints.values():
        name = _entry_name(entrypoint)
        own = f'object.remove(object.union(input, {{"parameters": input.{_PARAMETERS}.{name}}}), ["{_PARAMETERS}"])'
        rule = entrypoint.replace("/", ".")
        rules.append(f'result["{name}"] := x if {{\n\tx := data.{rule} with input as {own}\n}}\n')
    package = (_PREFIX + _ALL).replace("/", ".")
    return f"package {package}\n\nimport rego.v1\n\n" + "\n".join(rules)


def _text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
