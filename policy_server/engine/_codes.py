"""Reason codes of an evaluation that did not produce a policy's answer: stable, shown to callers and logged.

Each one denies (decisions fail closed); a policy's own denials carry the codes its Rego gives.
"""

EVALUATION_TIMEOUT = "evaluation_timeout"
"""The evaluation did not finish within its deadline; the worker was stopped."""
EVALUATION_MEMORY = "evaluation_memory_exceeded"
"""The worker grew past its memory limit and was stopped."""
ENGINE_CRASHED = "engine_crashed"
"""The worker process died (a segfault in the engine, for instance)."""
ENGINE_BUSY = "engine_busy"
"""No worker became free within the deadline."""
ENGINE_UNAVAILABLE = "engine_unavailable"
"""The engine (an OPA server) could not be reached or does not hold the policies."""
EVALUATION_ERROR = "evaluation_error"
"""The engine reported an error (a Rego runtime error, a conflict, an input it cannot carry)."""
EVALUATION_UNDEFINED = "evaluation_undefined"
"""The policy's result is undefined."""
INVALID_RESULT = "invalid_policy_result"
"""The policy answered something that is not ``{deny, warn, abort}`` as the rule contract says."""
POLICY_UNPREPARED = "policy_unprepared"
"""The policy could not be prepared for evaluation (its parameters cannot be given to the engine)."""

FAILURE_CODES = (
    EVALUATION_TIMEOUT,
    EVALUATION_MEMORY,
    ENGINE_CRASHED,
    ENGINE_BUSY,
    ENGINE_UNAVAILABLE,
    EVALUATION_ERROR,
    EVALUATION_UNDEFINED,
    INVALID_RESULT,
    POLICY_UNPREPARED,
)
