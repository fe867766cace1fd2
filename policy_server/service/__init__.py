"""Services that join the store, the engine and Kargo's rules; the HTTP layer calls one of them."""

from policy_server.service.policies import (
    ActivePolicy,
    ActiveSet,
    PolicyService,
    builtin_schema,
    read_policy_dir,
)
from policy_server.service.verdict import AbortAction, PolicyRef, Reason, Verdict, aggregate, in_scope

__all__ = [
    "AbortAction",
    "ActivePolicy",
    "ActiveSet",
    "PolicyRef",
    "PolicyService",
    "Reason",
    "Verdict",
    "aggregate",
    "builtin_schema",
    "in_scope",
    "read_policy_dir",
]
