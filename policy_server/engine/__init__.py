"""Rego evaluation: bundles, killable workers, lint and policy tests. No Litestar, no SQLAlchemy."""

from policy_server.engine._diagnostics import Problem, line_column, parse_rego_errors
from policy_server.engine._model import (
    ENGINE_CRASHED,
    ENGINE_UNAVAILABLE,
    EVALUATION_ERROR,
    EVALUATION_MEMORY,
    EVALUATION_TIMEOUT,
    EVALUATION_UNDEFINED,
    INVALID_RESULT,
    Bundle,
    Evaluator,
    Failure,
    PolicyCode,
    PolicyOutcome,
    TestOutcome,
    package_of,
)
from policy_server.engine._opa import OpaEvaluator
from policy_server.engine._opa_cli import OpaCli
from policy_server.engine._pool import PoolLimits, WorkerFailure
from policy_server.engine._regopy import RegopyEvaluator, discover_tests, outcome_from_value

__all__ = [
    "ENGINE_CRASHED",
    "ENGINE_UNAVAILABLE",
    "EVALUATION_ERROR",
    "EVALUATION_MEMORY",
    "EVALUATION_TIMEOUT",
    "EVALUATION_UNDEFINED",
    "INVALID_RESULT",
    "Bundle",
    "Evaluator",
    "OpaCli",
    "OpaEvaluator",
    "Failure",
    "PolicyCode",
    "PolicyOutcome",
    "PoolLimits",
    "Problem",
    "RegopyEvaluator",
    "TestOutcome",
    "WorkerFailure",
    "discover_tests",
    "line_column",
    "outcome_from_value",
    "package_of",
    "parse_rego_errors",
]
