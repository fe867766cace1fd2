"""Kargo and Argo Rollouts objects: parsing as Kubernetes serves them, and Kargo's queue rules."""

from policy_server.kargo._documents import Action, Item, is_ndjson, parse_body
from policy_server.kargo._objects import (
    ANALYSIS_TERMINAL_PHASES,
    ANNOTATION_ABORT,
    PROMOTION_TERMINAL_PHASES,
    KargoObject,
    Kind,
    ObjectError,
    ObjectKey,
    format_time,
    is_newer,
    name_ulid,
    parse_time,
    queue_key,
    rv_number,
    time_ns,
    ulid_millis,
)
from policy_server.kargo._view import PromotionFacts, RunFacts, newest_succeeded, queue_order, verifying_run

__all__ = [
    "ANALYSIS_TERMINAL_PHASES",
    "ANNOTATION_ABORT",
    "PROMOTION_TERMINAL_PHASES",
    "Action",
    "Item",
    "KargoObject",
    "Kind",
    "ObjectError",
    "ObjectKey",
    "PromotionFacts",
    "RunFacts",
    "format_time",
    "is_ndjson",
    "is_newer",
    "name_ulid",
    "newest_succeeded",
    "parse_body",
    "parse_time",
    "queue_key",
    "queue_order",
    "rv_number",
    "time_ns",
    "ulid_millis",
    "verifying_run",
]
