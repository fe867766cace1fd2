"""AdmissionReview (``admission.k8s.io/v1``) as the API server sends and expects it; unknown fields are accepted
(the API server sends more than a review needs)."""

from __future__ import annotations

from typing import Any

import msgspec


class GroupVersionKind(msgspec.Struct):
    group: str = ""
    version: str = ""
    kind: str = ""


class UserInfo(msgspec.Struct):
    username: str = ""
    groups: list[str] = msgspec.field(default_factory=list)


class AdmissionRequest(msgspec.Struct, rename="camel"):
    """What is asked: an operation on an object, by a user."""

    uid: str
    kind: GroupVersionKind = msgspec.field(default_factory=GroupVersionKind)
    operation: str = ""
    namespace: str | None = None
    name: str | None = None
    object: dict[str, Any] | None = None
    user_info: UserInfo = msgspec.field(default_factory=UserInfo)
    dry_run: bool = False


class Status(msgspec.Struct):
    """Why a request was refused (HTTP-style code; kubectl prints the message)."""

    code: int
    message: str
    reason: str = "Forbidden"


class AdmissionResponse(msgspec.Struct, omit_defaults=True):
    uid: str
    allowed: bool
    status: Status | None = None
    warnings: list[str] | None = None


class AdmissionReview(msgspec.Struct, rename={"api_version": "apiVersion"}):
    """A review: the request in, the same object with ``response`` out."""

    api_version: str = "admission.k8s.io/v1"
    kind: str = "AdmissionReview"
    request: AdmissionRequest | msgspec.UnsetType = msgspec.UNSET
    response: AdmissionResponse | msgspec.UnsetType = msgspec.UNSET
