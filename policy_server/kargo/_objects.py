"""Kargo and Argo Rollouts objects, as Kubernetes serves them, reduced to the columns we index."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

KARGO_GROUP = "kargo.akuity.io"
ROLLOUTS_GROUP = "argoproj.io"

LABEL_STAGE = "kargo.akuity.io/stage"
LABEL_FREIGHT_COLLECTION = "kargo.akuity.io/freight-collection"
ANNOTATION_STAGE = "kargo.akuity.io/stage"
ANNOTATION_PROMOTION = "kargo.akuity.io/promotion"
ANNOTATION_ABORT = "kargo.akuity.io/abort"

PROMOTION_TERMINAL_PHASES = frozenset({"Succeeded", "Failed", "Errored", "Aborted"})
ANALYSIS_TERMINAL_PHASES = frozenset({"Successful", "Failed", "Error", "Inconclusive"})

# Crockford base32, 26 characters: the ULID Kargo puts in Promotion and AnalysisRun names.
_ULID = re.compile(r"^[0-7][0-9a-hjkmnp-tv-zA-HJKMNP-TV-Z]{25}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Kind(StrEnum):
    """The kinds policy-server records."""

    STAGE = "Stage"
    PROMOTION = "Promotion"
    FREIGHT = "Freight"
    ANALYSIS_RUN = "AnalysisRun"

    @property
    def group(self) -> str:
        """The API group that serves this kind."""
        return ROLLOUTS_GROUP if self is Kind.ANALYSIS_RUN else KARGO_GROUP

    @property
    def plural(self) -> str:
        """The lower-case plural used in URLs."""
        return {
            Kind.STAGE: "stages",
            Kind.PROMOTION: "promotions",
            Kind.FREIGHT: "freights",
            Kind.ANALYSIS_RUN: "analysisruns",
        }[self]

    @classmethod
    def from_path(cls, text: str) -> Kind | None:
        """The kind named by a URL segment: ``Stage``, ``stage``, ``stages``, ``analysisruns``, ..."""
        lowered = text.lower()
        for kind in cls:
            if lowered in (kind.value.lower(), kind.plural, kind.plural.rstrip("s")):
                return kind
        return None


class ObjectError(ValueError):
    """A Kubernetes object misses a field we need or has one of the wrong type."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ObjectKey:
    """Where an object lives: kind, namespace, name."""

    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class KargoObject:
    """One recorded object: its identity, version, indexed columns and the object as served."""

    key: ObjectKey
    resource_version: str | None
    uid: str | None
    created_at: datetime | None
    columns: dict[str, Any]
    raw: dict[str, Any]

    @property
    def rv_number(self) -> int | None:
        """The resourceVersion as an integer, when it is one (it always is on a real API server)."""
        return rv_number(self.resource_version)


_RESOURCE_VERSION = re.compile(r"[0-9]{1,20}")
_RV_NUMBER = re.compile(r"[0-9]{1,18}")


def rv_number(resource_version: str | None) -> int | None:
    """``"182379"`` → 182379; anything that is not a plain non-negative ASCII integer → None."""
    if resource_version and _RV_NUMBER.fullmatch(resource_version):
        return int(resource_version)
    return None


def is_newer(incoming: str | None, stored: str | None) -> bool | None:
    """Whether ``incoming`` is a newer resourceVersion than ``stored``.

    True: newer; False: older; None: the same version. Versions are compared as numbers when both are
    integers (as every real API server serves them). Opaque, differing versions cannot be ordered:
    the incoming one wins, which is what a watch client does.
    """
    if incoming == stored:
        return None
    a, b = rv_number(incoming), rv_number(stored)
    if a is not None and b is not None:
        if a == b:
            return None
        return a > b
    return True


def classify(raw: Any) -> Kind | None:
    """The recorded kind of ``raw``, or None when it is an object of another kind (counted as skipped)."""
    kind_name = raw.get("kind") if isinstance(raw, dict) else None
    try:
        kind = Kind(kind_name)
    except ValueError:
        return None
    api_version = raw.get("apiVersion")
    if not isinstance(api_version, str) or api_version.split("/", 1)[0] != kind.group:
        return None
    return kind


def parse_object(raw: Any, kind: Kind) -> KargoObject:
    """Check ``raw`` and extract what we index. Raises ObjectError naming the first bad field."""
    if not isinstance(raw, dict):
        raise ObjectError("(object)", f"expected a JSON object, got {type_name(raw)}")
    metadata = _map(raw, "metadata", required=True)
    name = _str(metadata, "name", "metadata.name", required=True)
    namespace = _str(metadata, "namespace", "metadata.namespace", required=True)
    resource_version = _str(metadata, "resourceVersion", "metadata.resourceVersion")
    if resource_version and not _RESOURCE_VERSION.fullmatch(resource_version):
        # An API server serves the etcd revision: ASCII digits. Anything else cannot be ordered.
        raise ObjectError("metadata.resourceVersion", f"expected ASCII digits, got {resource_version[:40]!r}")
    uid = _str(metadata, "uid", "metadata.uid")
    created_at = _time(metadata, "creationTimestamp", "metadata.creationTimestamp")
    labels = _str_map(metadata, "labels", "metadata.labels")
    annotations = _str_map(metadata, "annotations", "metadata.annotations")
    status = _map(raw, "status") or {}
    extract = _EXTRACTORS[kind]
    columns = extract(raw, status, labels, annotations, name)
    return KargoObject(
        key=ObjectKey(kind, namespace, name),
        resource_version=resource_version or None,
        uid=uid,
        created_at=created_at,
        columns=columns,
        raw=raw,
    )


def parse_key(raw: Any, kind: Kind) -> ObjectKey:
    """Only the identity of ``raw``: what a DELETED event needs."""
    if not isinstance(raw, dict):
        raise ObjectError("(object)", f"expected a JSON object, got {type_name(raw)}")
    metadata = _map(raw, "metadata", required=True)
    return ObjectKey(
        kind,
        _str(metadata, "namespace", "metadata.namespace", required=True),
        _str(metadata, "name", "metadata.name", required=True),
    )


def queue_key(name: str) -> str:
    """The sort key of a Promotion in its Stage's queue: the ULID of its name, upper-cased.

    Names are ``<stage>.<ulid>.<freight7>`` (or ``<stage>.<target>.<ulid>.<hash>``); a name without a
    ULID (hand-made objects) sorts by the whole name, after every ULID-named Promotion.
    """
    ulid = name_ulid(name)
    return ulid if ulid is not None else f"~{name}"


def name_ulid(name: str) -> str | None:
    """The ULID inside a Kargo-generated name, upper-cased, or None."""
    parts = name.split(".")
    if len(parts) >= 3 and _ULID.match(parts[-2]):
        return parts[-2].upper()
    return None


def stage_of_name(name: str | None) -> str | None:
    """The Stage a Kargo-generated Promotion name carries (``<stage>.<ulid>.<freight7>``), or None: what a
    decision about a Promotion not recorded (yet) is logged under, so that browsing by Stage finds it."""
    if not name or name_ulid(name) is None:
        return None
    return name.split(".", 1)[0] or None


def ulid_millis(ulid: str) -> int:
    """The millisecond timestamp encoded in a ULID."""
    value = 0
    for char in ulid[:10].upper():
        value = value * 32 + _CROCKFORD.index(char)
    return value


def abort_patch() -> dict[str, Any]:
    """The JSON merge patch a Kubernetes client applies to a Promotion to abort it."""
    return {"metadata": {"annotations": {ANNOTATION_ABORT: '{"action":"terminate"}'}}}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(value: datetime | None) -> str | None:
    """RFC 3339 with an explicit ``+00:00`` offset, the form every Rego engine parses."""
    if value is None:
        return None
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat()


def time_ns(value: datetime | None) -> int | None:
    """Nanoseconds since the epoch."""
    if value is None:
        return None
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset, optional fraction) into an aware UTC datetime.

    Raises ``ValueError`` for anything else, including a time that is not within years 1 to 9999 in UTC.
    """
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range (years 1 to 9999 in UTC)") from None


# --- kind-specific columns ----------------------------------------------------------------------


def _stage(raw: dict, status: dict, labels: dict, annotations: dict, name: str) -> dict[str, Any]:
    spec = _map(raw, "spec") or {}
    verification = spec.get("verification")
    if verification is not None and not isinstance(verification, dict):
        raise ObjectError("spec.verification", f"expected an object, got {type_name(verification)}")
    health = _map(status, "health", "status.health") or {}
    history = status.get("freightHistory")
    if history is not None and not isinstance(history, list):
        raise ObjectError("status.freightHistory", f"expected an array, got {type_name(history)}")
    current_collection = None
    if history:
        first = history[0]
        if not isinstance(first, dict):
            raise ObjectError("status.freightHistory[0]", f"expected an object, got {type_name(first)}")
        current_collection = _str(first, "id", "status.freightHistory[0].id")
    current = _map(status, "currentPromotion", "status.currentPromotion") or {}
    last = _map(status, "lastPromotion", "status.lastPromotion") or {}
    return {
        "has_verification": verification is not None,
        "health_status": _str(health, "status", "status.health.status") or None,
        "current_promotion": _str(current, "name", "status.currentPromotion.name") or None,
        "last_promotion": _str(last, "name", "status.lastPromotion.name") or None,
        "current_freight_collection": current_collection or None,
    }


def _promotion(raw: dict, status: dict, labels: dict, annotations: dict, name: str) -> dict[str, Any]:
    spec = _map(raw, "spec", required=True)
    stage = _str(spec, "stage", "spec.stage", required=True)
    phase = _str(status, "phase", "status.phase") or ""
    collection = _map(status, "freightCollection", "status.freightCollection") or {}
    return {
        "stage": stage,
        "freight": _str(spec, "freight", "spec.freight") or None,
        "phase": phase,
        "terminal": phase in PROMOTION_TERMINAL_PHASES,
        "queue_key": queue_key(name),
        "freight_collection": _str(collection, "id", "status.freightCollection.id") or None,
        "started_at": _time(status, "startedAt", "status.startedAt"),
        "finished_at": _time(status, "finishedAt", "status.finishedAt"),
        "abort_requested": bool(annotations.get(ANNOTATION_ABORT)),
    }


def _freight(raw: dict, status: dict, labels: dict, annotations: dict, name: str) -> dict[str, Any]:
    origin = _map(raw, "origin") or {}
    return {
        "alias": _str(raw, "alias", "alias") or None,
        "origin_kind": _str(origin, "kind", "origin.kind") or None,
        "origin_name": _str(origin, "name", "origin.name") or None,
    }


def _analysis_run(raw: dict, status: dict, labels: dict, annotations: dict, name: str) -> dict[str, Any]:
    spec = _map(raw, "spec") or {}
    terminate = spec.get("terminate", False)
    if terminate is None:
        terminate = False
    if not isinstance(terminate, bool):
        raise ObjectError("spec.terminate", f"expected a boolean, got {type_name(terminate)}")
    phase = _str(status, "phase", "status.phase") or ""
    # The label is shortened for Stage names over 63 characters; the annotation then holds the full name.
    stage = annotations.get(ANNOTATION_STAGE) or labels.get(LABEL_STAGE)
    return {
        "stage": stage or None,
        "freight_collection": labels.get(LABEL_FREIGHT_COLLECTION) or None,
        "promotion": annotations.get(ANNOTATION_PROMOTION) or None,
        "phase": phase,
        "terminated": terminate,
        "started_at": _time(status, "startedAt", "status.startedAt"),
        "completed_at": _time(status, "completedAt", "status.completedAt"),
    }


_EXTRACTORS = {
    Kind.STAGE: _stage,
    Kind.PROMOTION: _promotion,
    Kind.FREIGHT: _freight,
    Kind.ANALYSIS_RUN: _analysis_run,
}


# --- typed field access -------------------------------------------------------------------------


def type_name(value: Any) -> str:
    """The JSON type of a decoded value, for messages: `an object`, `an array`, ..."""
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _map(parent: dict, key: str, path: str | None = None, *, required: bool = False) -> dict | None:
    value = parent.get(key)
    if value is None:
        if required:
            raise ObjectError(path or key, "is required")
        return None
    if not isinstance(value, dict):
        raise ObjectError(path or key, f"expected an object, got {type_name(value)}")
    return value


def _str(parent: dict, key: str, path: str, *, required: bool = False) -> str | None:
    value = parent.get(key)
    if value is None or (required and value == ""):
        if required:
            raise ObjectError(path, "is required")
        return None
    if not isinstance(value, str):
        raise ObjectError(path, f"expected a string, got {type_name(value)}")
    return value


def _str_map(parent: dict, key: str, path: str) -> dict[str, str]:
    value = _map(parent, key, path) or {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise ObjectError(f"{path}[{k}]", f"expected a string, got {type_name(v)}")
    return value


def _time(parent: dict, key: str, path: str) -> datetime | None:
    value = _str(parent, key, path)
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ObjectError(path, f"expected an RFC 3339 timestamp within years 1-9999, got {value!r} ({exc})") from None
