"""Shapes of the ingestion API."""

from __future__ import annotations

import msgspec


class IngestResult(msgspec.Struct):
    """What one ingestion request did, counted item by item."""

    items: int
    """Items in the request (objects and watch events; a List counts its items)."""
    applied: int
    """Objects recorded because they were new or newer than what was stored."""
    unchanged: int
    """Objects already recorded at the same resourceVersion (replays)."""
    stale: int
    """Objects older than what is stored (or than its deletion): ignored."""
    deleted: int
    """Objects recorded as deleted."""
    skipped: int
    """Items of kinds policy-server does not record (Warehouse, AnalysisTemplate, ...) or BOOKMARK events."""
    skipped_kinds: dict[str, int]
    """Skipped items by kind."""


class RecordedName(msgspec.Struct):
    """A recorded, not deleted, object: its name and the resourceVersion recorded."""

    name: str
    resource_version: str | None


class StoredObjectView(msgspec.Struct):
    """A recorded object as stored, with when it was recorded."""

    kind: str
    namespace: str
    name: str
    resource_version: str | None
    recorded_at: str
    deleted: bool
    object: dict
    """The object exactly as it was served."""
