"""Rego read by policy-server itself: a parser and the strict compile check every policy passes before it is
accepted (OPA's compile errors and strict mode, and policy-server's own rules). Pure Python; the service runs
it in an authoring worker, where a pathological module can only cost that worker its deadline."""

from policy_server.engine.rego._check import FORBIDDEN, RESERVED_PACKAGES, check, forbidden_reason
from policy_server.engine.rego._parser import RegoSyntaxError, parse_module

__all__ = ["FORBIDDEN", "RESERVED_PACKAGES", "RegoSyntaxError", "check", "forbidden_reason", "parse_module"]
