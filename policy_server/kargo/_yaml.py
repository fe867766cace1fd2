"""YAML documents (``kubectl get -o yaml``, manifests, ``---``-separated streams) read safely into JSON values.

Safe loading only (no Python objects), no aliases (a few lines of anchors can expand to gigabytes), nesting
bounded before anything is built, and every problem located by line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlError(ValueError):
    """A YAML stream that cannot be read; ``line`` is where (from 1), when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def is_yaml(content_type: str | None) -> bool:
    """Whether a Content-Type header announces YAML."""
    return bool(content_type) and content_type.split(";", 1)[0].strip().lower() in YAML_TYPES  # type: ignore[union-attr]


def yaml_documents(body: bytes, max_depth: int) -> Iterator[tuple[int, Any]]:
    """Each document of a YAML stream with the line it starts on; empty documents (a trailing ``---``) are skipped,
    an explicit ``null`` is not.

    Raises ``YamlError`` for malformed YAML, aliases, or nesting deeper than ``max_depth``.
    """
    _check_events(body, max_depth)
    try:
        for node in yaml.compose_all(body, Loader=_Loader):
            if node is None:
                continue
            value = _Loader(b"").construct_document(node)
            yield node.start_mark.line + 1, _json_keys(value, node.start_mark.line + 1)
    except yaml.MarkedYAMLError as exc:
        raise YamlError(f"not valid YAML: {exc.problem or exc}", _line(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from None


def _check_events(body: bytes, max_depth: int) -> None:
    depth = 0
    try:
        for event in yaml.parse(body, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                raise YamlError("YAML aliases (*name) are not accepted: write the value out", event.start_mark.line + 1)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    raise YamlError(f"nested deeper than max_json_depth={max_depth}", event.start_mark.line + 1)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        raise YamlError(f"not valid YAML: {exc.problem or exc}", _line(exc)) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {exc}") from None


def _json_keys(value: Any, line: int) -> Any:
    """The value as JSON would carry it: YAML's dates and times become text, mapping keys must be strings."""
    import datetime

    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise YamlError(f"a mapping key must be a string, got {key!r}", line)
            out[key] = _json_keys(item, line)
        return out
    if isinstance(value, list):
        return [_json_keys(item, line) for item in value]
    if isinstance(value, datetime.datetime):
        text = value.isoformat()
        return text if value.tzinfo is not None else text + "Z"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes | set):
        raise YamlError(f"a {type(value).__name__} is not JSON", line)
    return value


def _line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None
