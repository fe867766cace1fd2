"""Messages between the service and its Rego worker processes (length-prefixed msgpack)."""

from __future__ import annotations

import struct
from typing import Any

import msgspec

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 256 * 1024 * 1024

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


class Module(msgspec.Struct, array_like=True, frozen=True):
    """One Rego file: a name (used in error locations) and its source."""

    name: str
    source: str


class Call(msgspec.Struct, array_like=True):
    """One query against a compiled bundle: an entrypoint and the input it sees."""

    entrypoint: str
    input: Any


class Outcome(msgspec.Struct, omit_defaults=True):
    """The result of one query: a value, undefined, or an error with a code."""

    value: Any = None
    undefined: bool = False
    error_code: str | None = None
    error_message: str | None = None


def frame(message: dict[str, Any]) -> bytes:
    """A message ready to write: 4-byte big-endian length, then msgpack."""
    payload = _encoder.encode(message)
    return _HEADER.pack(len(payload)) + payload


def header_length(header: bytes) -> int:
    """The payload length announced by a 4-byte header."""
    (length,) = _HEADER.unpack(header)
    if length > MAX_MESSAGE:
        raise ValueError(f"message of {length} bytes is over the limit")
    return length


def decode(payload: bytes) -> dict[str, Any]:
    """A received message."""
    return _decoder.decode(payload)


HEADER_SIZE = _HEADER.size
