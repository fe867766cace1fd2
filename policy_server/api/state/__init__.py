"""Ingestion of Kargo state: objects, Lists, watch events and NDJSON streams."""
