"""Query parameters parsed before anything reads the store: times must be RFC 3339 with a zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policy_server.api.params import query_time
from policy_server.errors import InvalidInput


def test_a_time_with_a_zone_is_read_as_utc():
    assert query_time("2026-12-01T10:00:00+02:00", "since") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert query_time("2026-12-01T08:00:00Z", "since") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert query_time(None, "since") is None


@pytest.mark.parametrize("value", ["yesterday", "2026-12-01T08:00:00", "2026-13-01T00:00:00Z", ""])
def test_anything_else_is_a_422_naming_the_parameter(value):
    with pytest.raises(InvalidInput) as raised:
        query_time(value, "until")
    assert "`until`" in raised.value.detail and raised.value.errors[0].field == "until"
