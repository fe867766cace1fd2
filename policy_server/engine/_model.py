"""What the engine evaluates (policies, bundles) and what it answers (outcomes with reason codes)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from policy_server.engine._protocol import Compile, Module

RULES = ("deny", "warn", "abort")
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)\s*$", re.M)


def package_of(source: str) -> str | None:
    """The package a Rego module declares (plain dotted paths only)."""
    match = _PACKAGE.search(source)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class PolicyCode:
    """The Rego of one policy revision: its main module and its test modules."""

    policy_id: str
    source: str
    tests: dict[str, str] = field(default_factory=dict)

    @property
    def package(self) -> str:
        """The policy's package (validated to exist before a revision is accepted)."""
        return package_of(self.source) or ""

    @property
    def filename(self) -> str:
        """The file name used in problem locations."""
        return f"{self.policy_id}/policy.rego"

    def modules(self, with_tests: bool = False) -> list[Module]:
        """The modules to load: the policy, and its tests when asked."""
        out = [Module(self.filename, self.source)]
        if with_tests:
            out += [Module(f"{self.policy_id}/{name}", text) for name, text in sorted(self.tests.items())]
        return out


@dataclass(frozen=True, slots=True)
class Bundle:
    """Policies compiled together once per set of revisions, each reached through a generated entrypoint."""

    key: str
    modules: tuple[Module, ...]
    entrypoints: dict[str, str]
    """Policy id → entrypoint (``policy_server/entry/eN/result``): the policy on the input as given."""
    preset: dict[str, tuple[str, Any]] = field(default_factory=dict)
    """Policy id → (entrypoint, parameters): the policy with ``input.parameters`` replaced by these parameters
    (``policy_server/entry/eN/preset``), so one input serves every policy of a decision."""
    unprepared: dict[str, str] = field(default_factory=dict)
    """Policy id → why its parameters cannot be given to an engine: that policy alone fails closed."""

    @classmethod
    def of(cls, policies: list[PolicyCode], parameters: dict[str, Any] | None = None) -> Bundle:
        """Compile-ready bundle for ``policies``; the key changes whenever any source, or any parameters
        given (each policy's active parameters, compiled into its preset entrypoint), does."""
        modules: list[Module] = []
        entrypoints: dict[str, str] = {}
        preset: dict[str, tuple[str, Any]] = {}
        literals: dict[str, str] = {}
        unprepared: dict[str, str] = {}
        digest = hashlib.sha256()
        ordered = sorted(policies, key=lambda p: p.policy_id)
        for policy in ordered:
            digest.update(policy.policy_id.encode() + b"\0" + policy.source.encode() + b"\0")
            given = (parameters or {}).get(policy.policy_id, _NONE)
            if given is _NONE:
                continue
            problem = parameters_problem(given)
            if problem is not None:
                unprepared[policy.policy_id] = problem
                continue
            literal = json.dumps(given, allow_nan=False, ensure_ascii=True, sort_keys=True)
            literals[policy.policy_id] = literal
            digest.update(b"parameters\0" + literal.encode() + b"\0")
        key = digest.hexdigest()[:32]
        for index, policy in enumerate(ordered):
            name = f"e{index}"
            literal = literals.get(policy.policy_id)
            modules.append(Module(policy.filename, policy.source))
            modules.append(Module(f"policy_server/entry/{name}.rego", _wrapper(name, policy.package, key, literal)))
            entrypoints[policy.policy_id] = f"policy_server/entry/{name}/result"
            if literal is not None:
                preset[policy.policy_id] = (f"policy_server/entry/{name}/preset", parameters[policy.policy_id])  # type: ignore[index]
        return cls(key, tuple(modules), entrypoints, preset, unprepared)

    def compile_request(self) -> Compile:
        """The worker request that compiles this bundle."""
        return Compile(
            self.key,
            list(self.modules),
            [*self.entrypoints.values(), *(entry for entry, _ in self.preset.values())],
        )


_NONE = object()
MAX_PARAMETER_DEPTH = 32


def parameters_problem(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot reach an engine the same way as a Rego term and as input (None when it can):
    JSON only, integers within 64 bits, finite numbers, string keys, bounded nesting."""
    if depth > MAX_PARAMETER_DEPTH:
        return f"nested deeper than {MAX_PARAMETER_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"object key {key!r} is not a string"
            problem = parameters_problem(item, depth + 1)
            if problem is not None:
                return f"{key}: {problem}" if not problem.startswith("nested") else problem
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = parameters_problem(item, depth + 1)
            if problem is not None:
                return f"[{index}]: {problem}" if not problem.startswith("nested") else problem
        return None
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value < 2**63 else f"the integer {value} does not fit in 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a finite number"
    return f"a {type(value).__name__} is not JSON"


def _wrapper(name: str, package: str, key: str, parameters: str | None = None) -> str:
    # Collect the contract's rules into one value; a rule the policy does not define adds nothing. The
    # bundle key in the answer proves which policy revisions answered (an OPA server may hold others).
    # ``preset`` is the same with the policy's own parameters in place of ``input.parameters``: regopy
    # evaluates ``with input.parameters as …`` correctly where ``with input as …`` crashes (ENGINE.md).
    rules = ", ".join(f'"{rule}": {{x | some x in data.{package}.{rule}}}' for rule in RULES)
    source = f'package policy_server.entry.{name}\n\nimport rego.v1\n\nresult := {{{rules}, "bundle": "{key}"}}\n'
    if parameters is not None:
        source += f"\npreset := value if {{\n\tvalue := result with input.parameters as {parameters}\n}}\n"
    return source


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a policy could not be evaluated."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """What one policy said about one input: its rules' values, or why there are none."""

    policy_id: str
    deny: list[dict[str, Any]] = field(default_factory=list)
    warn: list[dict[str, Any]] = field(default_factory=list)
    abort: list[dict[str, Any]] = field(default_factory=list)
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One ``test_*`` rule: ``pass``, ``fail`` (false or undefined) or ``error``."""

    policy_id: str
    name: str
    file: str
    status: str
    message: str | None = None
    duration_ms: float = 0.0
    line: int | None = None


PolicyCall = tuple[str, dict[str, Any]]
"""A policy id and the input document it is evaluated on (with its ``parameters``)."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """One server behind an engine (an OPA server): reachable or not, and the policy set it holds."""

    url: str
    healthy: bool
    holds: str | None = None


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """Whether an engine can answer decisions now, for ``/ready``."""

    name: str
    ready: bool
    detail: str
    servers: tuple[ServerStatus, ...] = ()


@runtime_checkable
class Evaluator(Protocol):
    """The decision engine: evaluates the active policy set, nothing else (authoring has its own capacity, see
    ``Workbench``). One implementation per engine, chosen once when the service starts."""

    name: str
    """``regopy`` or ``opa``: shown in metrics and ``/ready``."""

    async def start(self) -> None:
        """Start workers or open connections."""

    async def close(self) -> None:
        """Stop workers or close connections."""

    async def evaluate(self, bundle: Bundle, calls: Sequence[PolicyCall]) -> list[PolicyOutcome]:
        """One outcome per call, in order; failures are outcomes with a reason code, never raised."""

    async def status(self) -> EngineStatus:
        """Whether decisions can be answered now."""
