"""Split what a person or kubectl hands the CLI into documents, one JSON line each.

``kubectl get -o json`` prints one document, ``kubectl get -w -o json`` prints indented objects or watch events one
after another, a recorded stream is NDJSON, and ``kubectl get -o yaml`` or a manifest is YAML. Each becomes one
line of NDJSON, the form ``POST /v1/state`` and the store's ingestion read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

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


def stream_documents(lines: Iterable[bytes], max_depth: int = 64) -> Iterator[bytes]:
    """Documents of a stream as they complete, each one compact JSON line: what ``kubectl get -w -o json``
    prints (indented objects one after another) or NDJSON, read line by line so that a watch is recorded while
    it runs. Input that is not JSON (YAML) is read to its end first, as ``split_documents`` does."""
    decoder = json.JSONDecoder()
    pending: list[str] = []
    source = iter(lines)
    for raw in source:
        line = raw.decode("utf-8", errors="strict")
        if not pending and not line.strip():
            continue
        if not pending and line.lstrip()[:1] not in ("{", "["):
            rest = raw + b"".join(source)
            yield from split_documents(rest, max_depth)
            return
        pending.append(line)
        # A document can only end on a line that closes it: a top-level `}`/`]` (kubectl's indented output) or
        # a line that is a whole document (NDJSON). Trying only there keeps a large document linear to read.
        stripped = line.rstrip()
        if not stripped.endswith(("}", "]")) or (len(pending) > 1 and stripped[:1] not in ("}", "]")):
            continue
        text = "".join(pending)
        try:
            value, end = decoder.raw_decode(text.lstrip())
        except json.JSONDecodeError:
            continue
        if text.lstrip()[end:].strip():
            continue  # more than one value on these lines: leave it to the final read
        pending = []
        yield msgspec.json.encode(value)
    if pending and "".join(pending).strip():
        yield from split_documents("".join(pending).encode(), max_depth)
