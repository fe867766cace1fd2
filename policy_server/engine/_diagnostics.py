"""Problems in Rego sources, located by file, line and column (regopy reports byte offsets)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_ERROR = re.compile(r"\(error (\d+):")
_MESSAGE = re.compile(r"\(errormsg (\d+):")


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in a policy: a stable code, a message for people, and where it is."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without empty members."""
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        for key in ("file", "line", "column"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def line_column(source: str, byte_offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset into ``source``."""
    prefix = source.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")
    line = prefix.count("\n") + 1
    column = len(prefix) - (prefix.rfind("\n") + 1) + 1
    return line, column


def parse_rego_errors(text: str, sources: dict[str, str], code: str = "rego_parse_error") -> list[Problem]:
    """Problems from regopy's error S-expression (``(error N:file|offset|length (errormsg N:msg) ...)``).

    Lengths in the S-expression count UTF-8 bytes, so names and messages are cut on bytes.
    """
    data = text.encode("utf-8")
    problems: list[Problem] = []
    position = 0
    while True:
        match = _ERROR.search(text, position)
        if match is None:
            break
        byte_start = len(text[: match.end()].encode("utf-8"))
        length = int(match.group(1))
        file_name = data[byte_start : byte_start + length].decode("utf-8", errors="replace")
        rest = data[byte_start + length :].decode("utf-8", errors="replace")
        offset_match = re.match(r"\|(\d+)\|(\d+)", rest)
        message = "invalid Rego"
        msg_match = _MESSAGE.search(rest)
        if msg_match is not None:
            rest_bytes = rest.encode("utf-8")
            msg_start = len(rest[: msg_match.end()].encode("utf-8"))
            msg_len = int(msg_match.group(1))
            message = rest_bytes[msg_start : msg_start + msg_len].decode("utf-8", errors="replace")
        line = column = None
        if offset_match is not None and file_name in sources:
            line, column = line_column(sources[file_name], int(offset_match.group(1)))
        problems.append(Problem(code, message, file_name or None, line, column))
        position = match.end()
    if not problems and text.strip():
        problems.append(Problem(code, text.strip()[:500]))
    return problems
