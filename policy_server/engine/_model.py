"""What the engine evaluates (policies, bundles) and what it answers (outcomes with reason codes)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from policy_server.engine._protocol import Module

# Reason codes of a failed evaluation: stable, shown to callers and in the decision log.
EVALUATION_TIMEOUT = "evaluation_timeout"
ENGINE_CRASHED = "engine_crashed"
EVALUATION_ERROR = "evaluation_error"
EVALUATION_UNDEFINED = "evaluation_undefined"
EVALUATION_MEMORY = "evaluation_memory_exceeded"
ENGINE_UNAVAILABLE = "engine_unavailable"
INVALID_RESULT = "invalid_policy_result"

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

    @classmethod
    def of(cls, policies: list[PolicyCode], parameters: dict[str, Any] | None = None) -> Bundle:
        """Compile-ready bundle for ``policies``; the key changes whenever any source, or any parameters
        given (each policy's active parameters, compiled into its preset entrypoint), does."""
        modules: list[Module] = []
        entrypoints: dict[str, str] = {}
        preset: dict[str, tuple[str, Any]] = {}
        literals: dict[str, str] = {}
        digest = hashlib.sha256()
        ordered = sorted(policies, key=lambda p: p.policy_id)
        for policy in ordered:
            digest.update(policy.policy_id.encode() + b"\0" + policy.source.encode() + b"\0")
            literal = _rego_literal((parameters or {}).get(policy.policy_id, _NONE))
            if literal is not None:
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
        return cls(key, tuple(modules), entrypoints, preset)

    def compile_message(self) -> dict[str, Any]:
        """The worker request that compiles this bundle."""
        return {
            "op": "compile",
            "key": self.key,
            "modules": [(m.name, m.source) for m in self.modules],
            "entrypoints": [*self.entrypoints.values(), *(entry for entry, _ in self.preset.values())],
        }


_NONE = object()


def _rego_literal(value: Any) -> str | None:
    """``value`` as a Rego term (JSON is one), or None when it has none (no value, NaN, …)."""
    if value is _NONE or not _fits(value):
        return None
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=True, sort_keys=True)
    except (TypeError, ValueError):
        return None


def _fits(value: Any) -> bool:
    """Whether ``value`` reaches Rego the same way as a term and as input (integers within 64 bits)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _fits(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_fits(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return value is None or isinstance(value, str | bool | float)


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


@runtime_checkable
class Evaluator(Protocol):
    """What the service needs of an engine: regopy in workers (embedded) or OPA servers (scale-out)."""

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def evaluate(self, bundle: Bundle, calls: Sequence[tuple[str, dict[str, Any]]]) -> list[PolicyOutcome]: ...

    async def compile_problems(self, modules: Sequence[tuple[str, str]]) -> list[Any]: ...

    async def run_tests(self, code: PolicyCode) -> list[TestOutcome]: ...
