"""Split what a person or kubectl hands the CLI into documents, one JSON line each.

``kubectl get -o json`` prints one document, ``kubectl get -w -o json`` prints indented objects or watch events one
after another, a recorded stream is NDJSON, and ``kubectl get -o yaml`` or a manifest is YAML. Each becomes one
line of NDJSON, the form ``POST /v1/state`` and the store's ingestion read.
"""

from __future__ import annotations

import json

import msgspec

from policy_server.errors import InvalidState
from policy_server.kargo._yaml import YamlError, yaml_documents


def split_documents(data: bytes, max_depth: int = 64) -> list[bytes]:
    """Each JSON value (or YAML document) of ``data`` as one compact JSON line. Raises InvalidState."""
    lines = [line for line in (raw.strip() for raw in data.splitlines()) if line]
    try:
        for line in lines:  # NDJSON (a recorded watch stream): the lines go as they are
            msgspec.json.decode(line)
        return lines
    except msgspec.DecodeError:
        pass
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidState(f"the input is not UTF-8: {exc}") from None
    decoder = json.JSONDecoder()
    position, out = 0, []
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return out
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            return _yaml_lines(data, max_depth, f"line {exc.lineno}, column {exc.colno}: {exc.msg}")
        out.append(msgspec.json.encode(value))


def _yaml_lines(data: bytes, max_depth: int, json_problem: str) -> list[bytes]:
    try:
        return [msgspec.json.encode(value) for _, value in yaml_documents(data, max_depth)]
    except YamlError as exc:
        where = f" at line {exc.line}" if exc.line else ""
        raise InvalidState(f"the input is neither JSON ({json_problem}) nor YAML ({exc.message}{where})") from None
