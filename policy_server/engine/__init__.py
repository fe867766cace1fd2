"""Rego evaluation: bundles, killable workers, the strict check and policy tests. No Litestar, no SQLAlchemy.

Two kinds of capacity, never shared: an ``Evaluator`` answers decisions from the active policy set (regopy
workers or OPA servers), a ``Workbench`` does everything authors submit (checks, tests, drafts).
"""

from policy_server.engine._codes import (
    ENGINE_BUSY,
    ENGINE_CRASHED,
    ENGINE_UNAVAILABLE,
    EVALUATION_ERROR,
    EVALUATION_MEMORY,
    EVALUATION_TIMEOUT,
    EVALUATION_UNDEFINED,
    FAILURE_CODES,
    INVALID_RESULT,
    POLICY_UNPREPARED,
)
from policy_server.engine._diagnostics import Problem, line_column, parse_rego_errors
from policy_server.engine._functions import FunctionClash, FunctionHead, function_clashes, function_heads
from policy_server.engine._model import (
    Bundle,
    EngineStatus,
    Evaluator,
    Failure,
    PolicyCall,
    PolicyCode,
    PolicyOutcome,
    ServerStatus,
    TestOutcome,
    package_of,
    parameters_problem,
)
from policy_server.engine._opa import OpaEvaluator
from policy_server.engine._opa_cli import OpaCli
from policy_server.engine._policy_tests import discover_tests
from policy_server.engine._pool import PoolLimits, WorkerFailure, WorkerPool
from policy_server.engine._regopy import RegopyEvaluator, outcome_from_value
from policy_server.engine._workbench import Workbench

__all__ = [
    "ENGINE_BUSY",
    "FunctionClash",
    "FunctionHead",
    "function_clashes",
    "function_heads",
    "ENGINE_CRASHED",
    "ENGINE_UNAVAILABLE",
    "EVALUATION_ERROR",
    "EVALUATION_MEMORY",
    "EVALUATION_TIMEOUT",
    "EVALUATION_UNDEFINED",
    "FAILURE_CODES",
    "INVALID_RESULT",
    "POLICY_UNPREPARED",
    "Bundle",
    "EngineStatus",
    "Evaluator",
    "Failure",
    "OpaCli",
    "OpaEvaluator",
    "PolicyCall",
    "PolicyCode",
    "PolicyOutcome",
    "PoolLimits",
    "Problem",
    "RegopyEvaluator",
    "ServerStatus",
    "TestOutcome",
    "WorkerFailure",
    "WorkerPool",
    "Workbench",
    "discover_tests",
    "line_column",
    "outcome_from_value",
    "package_of",
    "parameters_problem",
    "parse_rego_errors",
]
