"""Parameters and dependencies shared by the API's controllers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from litestar.di import NamedDependency
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter

from policy_server.errors import FieldError, InvalidInput
from policy_server.kargo import parse_time
from policy_server.settings import Settings
from policy_server.store import Database, StateStore

StateStoreDep = NamedDependency[StateStore]
DatabaseDep = NamedDependency[Database]
SettingsDep = NamedDependency[Settings]

Namespace = Annotated[
    str, PathParameter(description="Namespace (Kargo project).", examples=[Example(value="kargo-demo")])
]


def _time_parameter(description: str) -> object:
    return QueryParameter(description=description, format="date-time", max_length=40)


Since = Annotated[str | None, _time_parameter("At or after this time (RFC 3339, with Z or an offset).")]
Until = Annotated[str | None, _time_parameter("At or before this time (RFC 3339, with Z or an offset).")]


def query_time(value: str | None, name: str) -> datetime | None:
    """A query time (RFC 3339 with a zone, within years 1-9999 in UTC) as UTC; anything else is a 422 naming it."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        reason = str(exc) if "range" in str(exc) or "zone" in str(exc) else "not an RFC 3339 time"
        raise InvalidInput(f"`{name}`: {reason} (got {value!r})", errors=[FieldError(reason, field=name)]) from None


_DURATION = re.compile(r"^(\d{1,6})([dhm])$")


def window_time(value: str | None, name: str, now: datetime) -> datetime | None:
    """A window edge: a duration back from ``now`` (``7d``, ``12h``, ``30m``) or an RFC 3339 time; else a 422."""
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        return now - timedelta(**{unit: amount})
    return query_time(value, name)
